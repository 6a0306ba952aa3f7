//! TOML text to the document tree. A big file (a fleet generated from an inventory) is
//! cut before `[[probe]]` headers into parts of about [`PART_BYTES`], each parsed on its
//! own: the parser's token and event lists, about twenty bytes per byte of text, then
//! exist for one part at a time instead of the whole file. A file is cut only where that
//! cannot change its meaning: every part after the first holds `[[probe]]` tables and
//! their sub-tables only, so the parts meet at the `probe` array alone, which the later
//! parts extend as one parse would. Spans stay offsets into the whole text.
//!
//! [`read_in_parts`] goes further: the later parts are parsed on another thread while the
//! caller reads the probes before them, and each part is dropped once read, so a fleet
//! file takes the time of the slower of parsing and reading, not of both, and never holds
//! its whole tree.

use toml::de::{DeTable, DeValue};
use toml_parser::lexer::TokenKind;

use super::{Item, Key, NotADocument, Table, Text, Value};

/// About how much text one part holds (it ends at the first `[[probe]]` after this).
const PART_BYTES: usize = 64 * 1024;

/// A TOML document. Strings are borrowed from the text where TOML allows (no escapes).
pub fn from_toml(text: &str) -> Result<Item<'_>, NotADocument> {
    let mut root = Table::default();
    let mut start = 0;
    for end in part_ends(text).into_iter().chain(std::iter::once(text.len())) {
        let part = parse_part(text, start, end)?;
        if start == 0 {
            root = part;
        } else {
            merge_part(&mut root, part)?;
        }
        start = end;
    }
    Ok(Item { value: Value::Table(root), span: 0..text.len() })
}

/// A TOML document parsed in one piece: for a file already known not to be cut.
fn parse_whole(text: &str) -> Result<Item<'_>, NotADocument> {
    parse_part(text, 0, text.len()).map(|root| Item { value: Value::Table(root), span: 0..text.len() })
}

/// The later parts' `[[probe]]` tables, a part at a time, as [`read_in_parts`] hands them.
pub type LaterProbes<'i, 'a> = &'i mut dyn Iterator<Item = Result<LaterPart<'a>, NotADocument>>;

/// How many parsed parts may wait for the reader: enough that neither side waits for the
/// other, few enough that a slow reader does not hold the file's tree after all.
const PARTS_AHEAD: usize = 4;

/// One later part's `[[probe]]` tables. Dropped, they go back to the thread that parsed
/// them to be freed there: freeing them on the reading thread would have both threads
/// wait on the allocator's lock of the parser's memory (measured: parsing took twice as
/// long as alone).
pub struct LaterPart<'a> {
    probes: Vec<Item<'a>>,
    parser: Option<std::sync::mpsc::Sender<Vec<Item<'a>>>>,
}

impl<'a> std::ops::Deref for LaterPart<'a> {
    type Target = [Item<'a>];

    fn deref(&self) -> &Self::Target {
        &self.probes
    }
}

impl Drop for LaterPart<'_> {
    fn drop(&mut self) {
        if let Some(parser) = self.parser.take() {
            // A parser gone already: they are freed here.
            let _ = parser.send(std::mem::take(&mut self.probes));
        }
    }
}

/// What the parser thread hands the reader.
enum Parsed<'a> {
    Part(Result<Vec<Item<'a>>, NotADocument>),
    /// The scan found, past the first cut, what the parts cannot hold: the file is read
    /// again whole.
    ReadWhole,
}

/// Reads a TOML document with `read`, given the first part's tree (the whole document
/// when the file is not cut) and the `[[probe]]` tables of the later parts, parsed on
/// another thread while `read` works on the ones before (that thread also scans for each
/// part's end as it goes). `read` must take the later parts to the end (or to the first
/// error) for the document to have been read whole. A file found not to be cuttable only
/// after the first cut (a table other than a probe's among the probes) is read a second
/// time, whole: `read` must have no effect but its result.
pub fn read_in_parts<'a, R>(
    text: &'a str,
    mut read: impl FnMut(Result<Item<'a>, NotADocument>, LaterProbes<'_, 'a>) -> R,
) -> R {
    let mut cuts = Cuts::new(text);
    let Some(Cut::At(first_end)) = cuts.next() else {
        return read(parse_whole(text), &mut std::iter::empty());
    };
    let read_whole = std::cell::Cell::new(false);
    let result = std::thread::scope(|scope| {
        let (parts, parsed) = std::sync::mpsc::sync_channel(PARTS_AHEAD);
        let (give_back, given_back) = std::sync::mpsc::channel::<Vec<Item<'a>>>();
        let parser = std::thread::Builder::new().name("config-parts".into()).spawn_scoped(scope, move || {
            let mut start = first_end;
            while start < text.len() {
                given_back.try_iter().for_each(drop);
                let (end, next) = match cuts.next() {
                    Some(Cut::At(end)) => (end, Some(end)),
                    None => (text.len(), None),
                    Some(Cut::Whole) => {
                        let _ = parts.send(Parsed::ReadWhole);
                        break;
                    }
                };
                let part = parse_part(text, start, end).map(later_probes);
                let (failed, part) = match part {
                    Ok(Some(probes)) => (false, Parsed::Part(Ok(probes))),
                    Ok(None) => (true, Parsed::ReadWhole),
                    Err(err) => (true, Parsed::Part(Err(err))),
                };
                // A closed channel: the reader stopped (at an error of its own).
                if parts.send(part).is_err() || failed {
                    break;
                }
                start = next.unwrap_or(text.len());
            }
            drop(parts);
            // Until the reader has dropped its last part.
            given_back.iter().for_each(drop);
        });
        // No thread to be had (a process limit): the file is read whole, as a small one.
        if parser.is_err() {
            return None;
        }
        let head = parse_part(text, 0, first_end).map(|root| Item { value: Value::Table(root), span: 0..text.len() });
        let mut later = parsed.into_iter().map_while(|parsed| match parsed {
            Parsed::Part(part) => Some(part.map(|probes| LaterPart { probes, parser: Some(give_back.clone()) })),
            Parsed::ReadWhole => {
                read_whole.set(true);
                None
            }
        });
        let result = read(head, &mut later);
        // Unblocks the parser if `read` stopped early, and lets it end once the last part
        // is back, before the scope waits for it.
        drop(later);
        drop(give_back);
        Some(result)
    });
    match result {
        Some(result) if !read_whole.get() => result,
        _ => read(parse_whole(text), &mut std::iter::empty()),
    }
}

/// For fuzzing the cut: `text` read in parts (as [`read_in_parts`] hands it over) and read
/// whole must agree, in the document's shape or in being invalid. Panics when they do not.
pub fn check_parts_agree_with_whole(text: &str) {
    let streamed = read_streamed(text);
    let whole = parse_whole(text).map(without_probes);
    match (streamed, whole) {
        (Ok(streamed), Ok(whole)) => {
            assert!(streamed == whole, "read in parts, the document differs from the one read whole")
        }
        (Err(_), Err(_)) => {}
        (streamed, whole) => panic!("read in parts: {:?}; read whole: {:?}", streamed.map(drop), whole.map(drop)),
    }
}

/// The shape of the root without its probes, and of every probe, as [`read_in_parts`]
/// hands them over.
fn read_streamed(text: &str) -> Result<(String, Vec<String>), NotADocument> {
    read_in_parts(text, |head, later| {
        let (root, mut probes) = without_probes(head?);
        for part in later {
            probes.extend(part?.iter().map(|item| format!("{item:?}")));
        }
        Ok((root, probes))
    })
}

/// The shape of a document but its `[[probe]]` array, and the shapes of the probes.
fn without_probes(mut root: Item<'_>) -> (String, Vec<String>) {
    let mut probes = Vec::new();
    if let Value::Table(table) = &mut root.value
        && let Some(at) =
            table.entries.iter().position(|(key, item)| key.name == "probe" && matches!(item.value, Value::Array(_)))
        && let Value::Array(items) = table.entries.remove(at).1.value
    {
        probes = items.iter().map(|item| format!("{item:?}")).collect();
    }
    (format!("{root:?}"), probes)
}

/// A later part's probes; None when it holds anything else (by [`Cuts`], it cannot).
fn later_probes(part: Table<'_>) -> Option<Vec<Item<'_>>> {
    let mut probes = Vec::new();
    for (key, item) in part.entries {
        match item.value {
            Value::Array(items) if key.name == "probe" => probes.extend(items),
            _ => return None,
        }
    }
    Some(probes)
}

/// The offsets where parts end: at a `[[probe]]` header of the document's top level (not
/// in a string, a comment or a multi-line value), at least [`PART_BYTES`] after the last.
/// None when something after the first cut is not a probe's table, or `probe` is also a
/// root key or a `[probe]` table: such a file is parsed whole, as TOML judges it.
fn part_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    for cut in Cuts::new(text) {
        match cut {
            Cut::At(end) => ends.push(end),
            Cut::Whole => return Vec::new(),
        }
    }
    ends
}

/// What the scan of a file found next.
#[derive(Debug, PartialEq)]
enum Cut {
    /// A part ends here.
    At(usize),
    /// The file cannot be cut (see [`part_ends`]): whatever was cut so far, read it whole.
    Whole,
}

/// The scan behind [`part_ends`], a cut at a time, so that a part can be parsed as soon as
/// its end is known rather than after the whole file was scanned.
struct Cuts<'a> {
    text: &'a str,
    tokens: toml_parser::lexer::Lexer<'a>,
    last: usize,
    cut_yet: bool,
    depth: usize,
    line_start: bool,
    seen_header: bool,
    /// A `[[probe]]` header was met.
    probe_tables: bool,
    done: bool,
}

impl<'a> Cuts<'a> {
    fn new(text: &'a str) -> Self {
        Cuts {
            text,
            tokens: toml_parser::Source::new(text).lex(),
            last: 0,
            cut_yet: false,
            depth: 0,
            line_start: true,
            // A small file is never cut: nothing to scan.
            done: text.len() <= PART_BYTES,
            seen_header: false,
            probe_tables: false,
        }
    }

    fn word(&self, token: &toml_parser::lexer::Token) -> &'a str {
        self.text.get(token.span().start()..token.span().end()).unwrap_or("")
    }

    fn scan(&mut self) -> Option<Cut> {
        while let Some(token) = self.tokens.next() {
            match token.kind() {
                TokenKind::Eof => break,
                TokenKind::Whitespace | TokenKind::Comment => continue,
                TokenKind::Newline => {
                    self.line_start |= self.depth == 0;
                    continue;
                }
                TokenKind::LeftSquareBracket if self.depth == 0 && self.line_start => {
                    // A table header: what it names, up to the end of its line.
                    self.seen_header = true;
                    let start = token.span().start();
                    let mut named = Vec::new();
                    while let Some(t) = self.tokens.next() {
                        match t.kind() {
                            TokenKind::Newline | TokenKind::Eof => break,
                            TokenKind::Whitespace | TokenKind::Comment => {}
                            kind => named.push((kind, self.word(&t))),
                        }
                    }
                    self.line_start = true;
                    use TokenKind::{Atom, Dot, LeftSquareBracket as Open, RightSquareBracket as Close};
                    match named.as_slice() {
                        [(Open, _), (Atom, "probe"), (Close, _), (Close, _)] if start - self.last >= PART_BYTES => {
                            self.last = start;
                            self.cut_yet = true;
                            self.probe_tables = true;
                            return Some(Cut::At(start));
                        }
                        [(Open, _), (Atom, "probe"), (Close, _), (Close, _)] => self.probe_tables = true,
                        // A probe's sub-table: `[probe.tls]`, `[[probe.x]]`; before any
                        // `[[probe]]`, it makes `probe` a table that no later part extends.
                        [(Atom, "probe"), (Dot, _), ..] | [(Open, _), (Atom, "probe"), (Dot, _), ..]
                            if self.probe_tables => {}
                        [(Atom, "probe"), (Dot, _), ..] | [(Open, _), (Atom, "probe"), (Dot, _), ..] => {
                            return Some(Cut::Whole);
                        }
                        // Anything else may meet a table of another part: no cut after it.
                        _ if self.cut_yet => return Some(Cut::Whole),
                        [(Atom, "probe"), (Close, _)] => return Some(Cut::Whole),
                        _ => {}
                    }
                    continue;
                }
                // A root key named `probe` (an inline array the headers could not extend).
                TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString
                    if self.depth == 0 && self.line_start && !self.seen_header =>
                {
                    let key = self.word(&token).trim_matches(['"', '\'']);
                    if key == "probe" {
                        return Some(Cut::Whole);
                    }
                }
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => self.depth += 1,
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                    self.depth = self.depth.saturating_sub(1)
                }
                _ => {}
            }
            self.line_start = false;
        }
        None
    }
}

impl Iterator for Cuts<'_> {
    type Item = Cut;

    fn next(&mut self) -> Option<Cut> {
        if self.done {
            return None;
        }
        let cut = self.scan();
        self.done = !matches!(cut, Some(Cut::At(_)));
        cut
    }
}

fn parse_part(text: &str, start: usize, end: usize) -> Result<Table<'_>, NotADocument> {
    let part = text.get(start..end).unwrap_or("");
    let document = DeTable::parse(part).map_err(|err| NotADocument {
        message: format!("not valid TOML: {}", err.message().trim()),
        span: err.span().map(|s| s.start + start..s.end + start),
    })?;
    toml_table(document.into_inner(), start)
}

/// Adds a later part's probes to the document so far: `[[probe]]` tables extend the
/// array (the only key a later part holds, by [`part_ends`]).
fn merge_part<'a>(root: &mut Table<'a>, part: Table<'a>) -> Result<(), NotADocument> {
    for (key, item) in part.entries {
        match (root.get_mut(&key.name).map(|e| &mut e.value), item.value) {
            (Some(Value::Array(probes)), Value::Array(more)) => probes.extend(more),
            (None, value) => root.entries.push((key, Item { value, span: item.span })),
            _ => {
                return Err(NotADocument {
                    message: format!("not valid TOML: duplicate key `{}`", key.name),
                    span: Some(key.span.clone()),
                });
            }
        }
    }
    Ok(())
}

fn toml_table(table: DeTable<'_>, offset: usize) -> Result<Table<'_>, NotADocument> {
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table {
        let span = key.span();
        let item = toml_item(value, offset)?;
        entries.push((Key { name: key.into_inner(), span: span.start + offset..span.end + offset }, item));
    }
    Ok(Table { entries })
}

fn toml_item(value: toml::Spanned<DeValue<'_>>, offset: usize) -> Result<Item<'_>, NotADocument> {
    let span = value.span();
    let span = span.start + offset..span.end + offset;
    let value = match value.into_inner() {
        DeValue::String(s) => Value::Text(Text::Written(s)),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Integer(n),
            Err(_) => {
                return Err(NotADocument {
                    message: format!("not valid TOML: `{}` is out of the range of a 64-bit integer", i.as_str()),
                    span: Some(span),
                });
            }
        },
        DeValue::Float(f) => Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Boolean(b),
        DeValue::Datetime(_) => Value::Datetime,
        DeValue::Array(items) => {
            Value::Array(items.into_iter().map(|i| toml_item(i, offset)).collect::<Result<_, _>>()?)
        }
        DeValue::Table(table) => Value::Table(toml_table(table, offset)?),
    };
    Ok(Item { value, span })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document's shape, for comparing two readings: keys, values, spans.
    fn shape(item: &Item<'_>) -> String {
        format!("{item:?}")
    }

    /// The same text read whole and in parts.
    fn whole(text: &str) -> Item<'_> {
        parse_whole(text).unwrap()
    }

    fn fleet(n: usize, extra: &str) -> String {
        let mut text = String::from("# a fleet\n");
        for i in 0..n {
            text.push_str(&format!(
                "[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"https://h{i}/\"\nheaders = {{ A = \"[[probe]]\" }}\nlist = [\n[1],\n]\nnote = \"\"\"\n[[probe]]\n\"\"\"\n{extra}"
            ));
        }
        text
    }

    #[test]
    fn a_big_file_read_in_parts_is_the_file_read_whole() {
        let text = format!("[defaults]\ntimeout = \"5s\"\n\n{}", fleet(3000, "[probe.tls]\nca = \"x\"\n"));
        assert!(!part_ends(&text).is_empty(), "the fleet is cut");
        assert_eq!(shape(&from_toml(&text).unwrap()), shape(&whole(&text)));
    }

    #[test]
    fn headers_in_strings_and_values_do_not_cut() {
        let body: String = (0..5000).map(|i| format!("x{i} = '''\n[[probe]]\n'''\ny{i} = [\n  [1],\n]\n")).collect();
        let text = format!("[[probe]]\nname = \"a\"\n{body}[[probe]]\nname = \"b\"\n");
        let ends = part_ends(&text);
        assert_eq!(ends, vec![text.rfind("[[probe]]\nname = \"b\"").unwrap()]);
        assert_eq!(shape(&from_toml(&text).unwrap()), shape(&whole(&text)));
    }

    #[test]
    fn a_file_with_other_tables_among_the_probes_is_read_whole() {
        let filler = fleet(1500, "[probe.tls]\nca = \"x\"\n");
        for text in [
            format!(
                "[[tunnel]]\nname = \"t1\"\n{filler}[[tunnel]]\nname = \"t2\"\n{filler}[tunnel.auth]\ntype = \"agent\"\n"
            ),
            format!("{filler}[defaults]\ntimeout = \"2s\"\n{filler}"),
            format!("probe = []\n{filler}"),
            format!("[probe]\nx = 1\n{filler}"),
            format!("[probe.tls]\nca = 1\n{filler}"),
        ] {
            assert!(part_ends(&text).is_empty(), "{}", &text[..40]);
            assert_eq!(from_toml(&text).is_ok(), DeTable::parse(&text).is_ok());
        }
        // Tables before the probes do not stop the cut.
        let text = format!(
            "[defaults]\ntimeout = \"1s\"\n[[tunnel]]\nname = \"t\"\n[tunnel.auth]\ntype = \"agent\"\n{filler}"
        );
        assert!(!part_ends(&text).is_empty());
        assert_eq!(shape(&from_toml(&text).unwrap()), shape(&whole(&text)));
        // Nor a long head before the first probe, whose sub-tables follow the cut.
        let comments = "# an inventory's preamble\n".repeat(4000);
        let text = format!("{comments}[[probe]]\nname = \"a\"\n[probe.tls]\nca = \"x\"\n{filler}");
        assert_eq!(part_ends(&text).first(), Some(&comments.len()));
        assert_eq!(shape(&from_toml(&text).unwrap()), shape(&whole(&text)));
    }

    #[test]
    fn the_parts_read_while_parsing_are_the_file_read_whole() {
        let text = format!("[defaults]\ntimeout = \"5s\"\n\n{}", fleet(3000, "[probe.tls]\nca = \"x\"\n"));
        assert!(part_ends(&text).len() > 3, "the fleet is cut");
        let (root, probes) = read_streamed(&text).unwrap();
        let (expected_root, expected) = without_probes(whole(&text));
        assert_eq!(probes.len(), 3000);
        assert_eq!(probes, expected);
        assert_eq!(root, expected_root);
        // A file too small to cut comes whole, with no later parts.
        let small = fleet(3, "");
        assert_eq!(read_streamed(&small).unwrap().1.len(), 3);
    }

    #[test]
    fn a_table_found_among_the_later_probes_has_the_file_read_again_whole() {
        let filler = fleet(1500, "");
        let text = format!("{filler}[defaults]\ntimeout = \"2s\"\n{filler}");
        let mut readings = 0;
        let (root, probes) = read_in_parts(&text, |head, later| {
            readings += 1;
            let root = head.unwrap();
            let later: usize = later.map(|part| part.unwrap().len()).sum();
            (root, later)
        });
        assert_eq!(readings, 2, "read in parts, then whole");
        assert_eq!(probes, 0, "the second reading has no later parts");
        assert_eq!(shape(&root), shape(&whole(&text)));
    }

    #[test]
    fn an_error_in_a_later_part_ends_the_streamed_reading_at_its_place() {
        let filler = fleet(1500, "");
        let text = format!("{filler}[[probe]]\nname = \n{filler}");
        let err = read_streamed(&text).unwrap_err();
        assert!(err.message.starts_with("not valid TOML"), "{}", err.message);
        let at = err.span.unwrap().start;
        assert_eq!(&text[text[..at].rfind("name").unwrap()..at].trim_end(), &"name =", "{}", err.message);
        // A reader that stops early does not leave the parser waiting.
        let stopped = read_in_parts(&text, |_, later| later.take(1).count());
        assert_eq!(stopped, 1);
    }

    #[test]
    fn an_error_in_a_later_part_is_at_its_place_in_the_whole_text() {
        let filler = fleet(1500, "");
        let text = format!("{filler}[[probe]]\nname = \n");
        let err = from_toml(&text).unwrap_err();
        assert!(err.message.starts_with("not valid TOML"), "{}", err.message);
        assert!(err.span.unwrap().start > text.len() - 10, "{}", err.message);
    }
}
