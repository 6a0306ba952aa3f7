use std::collections::BTreeSet;

use super::*;

fn tables(ty: Ty, out: &mut Vec<(String, Vec<&'static str>)>, path: &str, seen: &mut BTreeSet<String>) {
    match ty {
        Ty::Table(t) | Ty::Tables(t) => {
            let names: Vec<&str> = t.all().map(|k| k.name).collect();
            out.push((path.to_string(), names));
            for key in t.all() {
                tables(key.ty, out, &format!("{path}.{}", key.name), seen);
            }
        }
        Ty::Tagged(t) | Ty::TaggedTables(t) => {
            // A form may hold its own kind of table (assume_role's source): once is enough.
            if !seen.insert(t.name.to_string()) && path.matches('[').count() > 3 {
                return;
            }
            for variant in t.variants {
                let names: Vec<&str> = t.common.iter().chain(variant.all()).map(|k| k.name).collect();
                let here = format!("{path}[{}]", variant.tag);
                out.push((here.clone(), names));
                for key in t.common.iter().chain(variant.all()) {
                    tables(key.ty, out, &format!("{here}.{}", key.name), seen);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn no_table_declares_a_key_twice_or_a_tag_twice() {
    let mut all = Vec::new();
    tables(Ty::Table(&ROOT), &mut all, "", &mut BTreeSet::new());
    assert!(all.len() > 60, "{}", all.len());
    for (path, names) in &all {
        let unique: BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{path}: {names:?}");
        assert!(!names.contains(&"type") && !names.contains(&"kind"), "{path}: the tag is the shape's");
    }
}

#[test]
fn paths_lead_to_the_keys_of_each_form() {
    let bearer = keys_at("probe[http].auth[bearer]").unwrap();
    assert_eq!(bearer, ["type", "token"]);
    let postgres = keys_at("probe[postgres]").unwrap();
    for key in ["kind", "name", "host", "require_auth", "channel_binding", "tls", "auth", "max_age"] {
        assert!(postgres.contains(&key), "{key}: {postgres:?}");
    }
    assert!(!postgres.contains(&"bucket"));
    assert_eq!(keys_at("probe[s3].auth[assume_role].source[static]").unwrap().len(), 4);
    assert!(keys_at("probe[nosuch]").is_none() && keys_at("probe[http].nosuch").is_none());
    assert!(keys_at("").unwrap().contains(&"secret_store"));
}

#[test]
fn secrets_are_marked() {
    let secret = |path: &str, key: &str| find(path, key).is_some_and(|k| k.is_secret());
    assert!(secret("probe[http].auth[bearer]", "token"));
    assert!(secret("probe[postgres]", "password"));
    assert!(secret("secret_store[vault].auth[approle]", "secret_id"));
    assert!(!secret("probe[postgres]", "user"));
}

/// The declared key `key` of the table at `path`.
fn find(path: &str, key: &str) -> Option<&'static Key> {
    let mut all = Vec::new();
    collect(Ty::Table(&ROOT), "", &mut all, &mut BTreeSet::new());
    all.into_iter().find(|(p, k)| p == path && k.name == key).map(|(_, k)| k)
}

fn collect(ty: Ty, path: &str, out: &mut Vec<(String, &'static Key)>, seen: &mut BTreeSet<String>) {
    match ty {
        Ty::Table(t) | Ty::Tables(t) => {
            for key in t.all() {
                out.push((path.to_string(), key));
                let next = if path.is_empty() { key.name.to_string() } else { format!("{path}.{}", key.name) };
                collect(key.ty, &next, out, seen);
            }
        }
        Ty::Tagged(t) | Ty::TaggedTables(t) => {
            if !seen.insert(t.name.to_string()) && path.matches('[').count() > 3 {
                return;
            }
            for variant in t.variants {
                let here = format!("{path}[{}]", variant.tag);
                for key in t.common.iter().chain(variant.all()) {
                    out.push((here.clone(), key));
                    collect(key.ty, &format!("{here}.{}", key.name), out, seen);
                }
            }
        }
        _ => {}
    }
}
