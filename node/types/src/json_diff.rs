//! What changed between two JSON documents (two serials of a site
//! control), leaf by leaf: `controller site-control --diff` and the web
//! console show the same comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// Flattens a JSON document into path -> value, keying list items by their
/// name, site code or server so a reordered list is no change.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let dot = if prefix.is_empty() { "" } else { "." };
                flatten(&format!("{prefix}{dot}{k}"), x, out);
            }
        }
        Value::Array(a) => {
            if a.is_empty() {
                out.insert(prefix.to_string(), "[]".into());
            }
            for (i, x) in a.iter().enumerate() {
                let key = ["name", "site_code", "server"]
                    .iter()
                    .find_map(|k| x.get(k).and_then(|v| v.as_str()))
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                flatten(&format!("{prefix}[{key}]"), x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// What changed from `x` to `y`: one `{field, from, to}` per changed leaf,
/// in field order; a side that lacks the field has `null`.
pub fn changes(x: &Value, y: &Value) -> Vec<Value> {
    let (mut fx, mut fy) = (BTreeMap::new(), BTreeMap::new());
    flatten("", x, &mut fx);
    flatten("", y, &mut fy);
    let keys: BTreeSet<&String> = fx.keys().chain(fy.keys()).collect();
    keys.into_iter()
        .filter(|k| fx.get(*k) != fy.get(*k))
        .map(|k| json!({"field": k, "from": fx.get(k), "to": fy.get(k)}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reordered_list_is_no_change_but_an_edited_item_is() {
        let x = json!({"serial": 1, "domains": [{"name": "A", "browse": ["a"]}, {"name": "B", "browse": []}]});
        let y = json!({"serial": 1, "domains": [{"name": "B", "browse": []}, {"name": "A", "browse": ["a"]}]});
        assert!(changes(&x, &y).is_empty());
        let z = json!({"serial": 2, "domains": [{"name": "A", "browse": ["b"]}, {"name": "B", "browse": []}]});
        assert_eq!(
            changes(&x, &z),
            [
                json!({"field": "domains[A].browse[0]", "from": "\"a\"", "to": "\"b\""}),
                json!({"field": "serial", "from": "1", "to": "2"}),
            ]
        );
        let w = json!({"serial": 1, "domains": []});
        assert_eq!(
            changes(&w, &x)[0],
            json!({"field": "domains", "from": "[]", "to": null})
        );
    }
}
