//! Shell-style wildcards, for `--only`/`--skip` patterns (`*`) and known_hosts host
//! patterns (`*` and `?`).

/// Which characters are wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wildcards {
    /// `*` matches any run of characters; everything else matches itself.
    Star,
    /// Also `?`, matching exactly one character (OpenSSH's patterns).
    StarAndQuestion,
}

pub fn matches(pattern: &str, text: &str, wildcards: Wildcards) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let any_one = |c: char| wildcards == Wildcards::StarAndQuestion && c == '?';
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == t[ti] || any_one(p[pi])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_like_shell_stars() {
        let star = |p, t| matches(p, t, Wildcards::Star);
        assert!(star("prod-*", "prod-api"));
        assert!(star("*api*", "orders-api-v2"));
        assert!(star("*", ""));
        assert!(star("a*b*c", "aXXbYYc"));
        assert!(!star("a*b*c", "aXXbYY"));
        assert!(!star("prod", "prod-api"));
        assert!(star("exact", "exact"));
        assert!(!star("db?", "db1"), "`?` is literal in --only patterns");
    }

    #[test]
    fn question_marks_match_one_character_when_asked() {
        let both = |p, t| matches(p, t, Wildcards::StarAndQuestion);
        assert!(both("db?.internal", "db1.internal"));
        assert!(!both("db?.internal", "db12.internal"));
        assert!(both("*.internal", "a.b.internal"));
    }
}
