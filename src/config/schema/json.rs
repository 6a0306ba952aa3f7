//! The declared shape as a JSON Schema (draft-07, which Taplo and the common validators
//! read): closed tables (a misspelt key is an error), one form per `kind` and `type`.

use serde_json::{Map, Value, json};

use super::{Key, ROOT, Table, Tagged, Ty};

/// Where references may stand for a number, a boolean or a word.
const REFERENCE: &str = r"\$\{";

const SECRET_NOTE: &str = " (a secret: write it as ${ENV}, ${file:PATH} or ${STORE:REF}, not in the file)";

/// The schema of `probes.toml`.
pub fn json_schema() -> Value {
    let mut definitions = Map::new();
    let mut root = table(&ROOT, &mut definitions);
    root["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    root["$id"] = json!("https://github.com/authprobe/authprobe/schemas/probes.schema.json");
    root["title"] = json!("authprobe probes.toml");
    root["description"] =
        json!("authprobe's probes: which credentials to check against which systems (docs/config.md)");
    root["definitions"] = Value::Object(definitions);
    root
}

fn table(table: &Table, definitions: &mut Map<String, Value>) -> Value {
    let schema = closed(table.all(), definitions);
    match table.name {
        Some(name) => {
            definitions.entry(name).or_insert(schema);
            json!({ "$ref": format!("#/definitions/{name}") })
        }
        None => schema,
    }
}

/// An object with exactly these keys.
fn closed<'a>(keys: impl Iterator<Item = &'a Key>, definitions: &mut Map<String, Value>) -> Value {
    let mut properties = Map::new();
    for key in keys {
        properties.insert(key.name.to_string(), value(key, definitions));
    }
    json!({ "type": "object", "properties": properties, "additionalProperties": false })
}

fn tagged(tagged: &Tagged, definitions: &mut Map<String, Value>) -> Value {
    let reference = json!({ "$ref": format!("#/definitions/{}", tagged.name) });
    if definitions.contains_key(tagged.name) {
        return reference;
    }
    // Reserved first: a form may hold a table of its own kind (assume_role's source).
    definitions.insert(tagged.name.to_string(), Value::Null);
    let mut forms = Vec::new();
    for variant in tagged.variants {
        let mut form = closed(tagged.common.iter().chain(variant.all()), definitions);
        form["properties"][tagged.tag] = json!({ "const": variant.tag, "description": variant.doc });
        let mut required = vec![tagged.tag];
        if tagged.common.iter().any(|k| k.name == "name") {
            required.push("name");
        }
        form["required"] = json!(required);
        forms.push(form);
    }
    // `if tag = X then form X` rather than `oneOf`: a validator then reports what is wrong
    // with the form the table chose, not why it is none of the others.
    let tags: Vec<&str> = tagged.variants.iter().map(|v| v.tag).collect();
    let chosen: Vec<Value> = tagged
        .variants
        .iter()
        .zip(forms)
        .map(
            |(variant, form)| json!({ "if": { "properties": { tagged.tag: { "const": variant.tag } } }, "then": form }),
        )
        .collect();
    let schema = json!({
        "type": "object",
        "required": [tagged.tag],
        "properties": { tagged.tag: { "enum": tags } },
        "allOf": chosen,
    });
    definitions.insert(tagged.name.to_string(), schema);
    reference
}

fn value(key: &Key, definitions: &mut Map<String, Value>) -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let mut schema = match key.ty {
        Ty::Str | Ty::Duration | Ty::Path | Ty::Url | Ty::Secret => json!({ "type": "string" }),
        Ty::Bool => json!({ "type": ["boolean", "string"] }),
        Ty::Int => json!({ "type": ["integer", "string"] }),
        Ty::Port => json!({ "anyOf": [{ "type": "integer", "minimum": 1, "maximum": 65535 }, { "type": "string" }] }),
        Ty::OneOf(words) => json!({ "anyOf": [{ "enum": words }, { "type": "string", "pattern": REFERENCE }] }),
        Ty::StrOrList => json!({ "anyOf": [{ "type": "string" }, strings] }),
        Ty::StrList => strings,
        Ty::StrMap => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        Ty::ListsByName => json!({ "type": "object", "additionalProperties": strings }),
        Ty::Statuses => json!({
            "anyOf": [
                { "type": ["integer", "string"] },
                { "type": "array", "items": { "type": ["integer", "string"] } },
            ]
        }),
        Ty::Table(t) => table(t, definitions),
        Ty::Tagged(t) => tagged(t, definitions),
        Ty::Tables(t) => json!({ "type": "array", "items": table(t, definitions) }),
        Ty::TaggedTables(t) => json!({ "type": "array", "items": tagged(t, definitions) }),
    };
    let doc = match key.ty {
        Ty::Secret => format!("{}{SECRET_NOTE}", key.doc),
        Ty::Duration => format!("{} (a duration: \"500ms\", \"10s\", \"2m\", \"90d\")", key.doc),
        _ => key.doc.to_string(),
    };
    if let Some(object) = schema.as_object_mut()
        && !object.contains_key("$ref")
    {
        object.insert("description".into(), json!(doc));
    }
    schema
}
