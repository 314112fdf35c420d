//! Vault's conventions for request fields, applied once at the edge: `null` means not set,
//! lists are a JSON array or a comma-separated string, tags are a map or `["k=v", …]`,
//! durations are seconds or Go-style strings, and unknown fields become warnings.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::duration::Ttl;

/// A field that could not be read; the message names the field and what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

/// The body (and, for reads, query parameters) of one request. Each getter takes its field
/// out, so whatever is left at the end was not understood.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Fields { map }
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// The value of `key`, left in place (for checks made before the fields are consumed).
    pub fn peek(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Overlays `other` on `self`: fields set in `other` replace ours (how a role update merges).
    pub fn overlay(&mut self, other: Fields) {
        for (k, v) in other.map {
            if !v.is_null() {
                self.map.insert(k, v);
            }
        }
    }

    pub fn string(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(FieldError(format!(
                "{key} must be a string, got {}",
                kind(&other)
            ))),
        }
    }

    /// A string that must not be empty when given; empty counts as not set.
    pub fn non_empty_string(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        Ok(self.string(key)?.filter(|s| !s.trim().is_empty()))
    }

    pub fn list(&mut self, key: &str) -> Result<Option<Vec<String>>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    other => Err(FieldError(format!(
                        "{key} must be a list of strings, but one item is {}",
                        kind(&other)
                    ))),
                })
                .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(FieldError(format!(
                "{key} must be a list of strings or a comma-separated string, got {}",
                kind(&other)
            ))),
        }
    }

    pub fn tags(&mut self, key: &str) -> Result<Option<BTreeMap<String, String>>, FieldError> {
        let pair = |item: &str| -> Result<(String, String), FieldError> {
            item.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| {
                    FieldError(format!("{key} entry {item:?} must have the form key=value"))
                })
        };
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    Value::Number(n) => Ok((k, n.to_string())),
                    Value::Bool(b) => Ok((k, b.to_string())),
                    other => Err(FieldError(format!(
                        "{key}.{k} must be a string, got {}",
                        kind(&other)
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => pair(s),
                    other => Err(FieldError(format!(
                        "{key} must be a map or a list of \"key=value\" strings, but one item is {}",
                        kind(other)
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(pair)
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(FieldError(format!(
                "{key} must be a map or a list of \"key=value\" strings, got {}",
                kind(&other)
            ))),
        }
    }

    pub fn ttl(&mut self, key: &str) -> Result<Option<Ttl>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => serde_json::from_value::<Ttl>(v)
                .map(Some)
                .map_err(|e| FieldError(format!("{key}: {e}"))),
        }
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" | "" => Ok(Some(false)),
                _ => Err(FieldError(format!(
                    "{key} must be true or false, got {s:?}"
                ))),
            },
            Some(other) => Err(FieldError(format!(
                "{key} must be true or false, got {}",
                kind(&other)
            ))),
        }
    }

    pub fn int(&mut self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| FieldError(format!("{key} must be an integer, got {s:?}"))),
            Some(other) => Err(FieldError(format!(
                "{key} must be an integer, got {}",
                kind(&other)
            ))),
        }
    }

    /// A JSON document given either as a string holding JSON or as a JSON object; returned compact.
    pub fn json_document(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                Ok(v @ Value::Object(_)) => Ok(Some(v.to_string())),
                Ok(_) => Err(FieldError(format!("{key} must be a JSON object"))),
                Err(e) => Err(FieldError(format!("{key} is not valid JSON: {e}"))),
            },
            Some(v @ Value::Object(_)) => Ok(Some(v.to_string())),
            Some(other) => Err(FieldError(format!(
                "{key} must be a JSON object or a string holding one, got {}",
                kind(&other)
            ))),
        }
    }

    /// One warning per field nobody asked for, worded as Vault words it.
    pub fn unknown_field_warnings(self) -> Vec<String> {
        self.map
            .keys()
            .map(|k| format!("Endpoint ignored these unrecognized parameters: [{k}]"))
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        Fields::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn lists_accept_arrays_and_comma_strings() {
        let mut f = fields(json!({"a": ["x", " y "], "b": "x, y,,", "c": null, "d": 5}));
        assert_eq!(f.list("a").unwrap().unwrap(), ["x", "y"]);
        assert_eq!(f.list("b").unwrap().unwrap(), ["x", "y"]);
        assert_eq!(f.list("c").unwrap(), None);
        assert!(f.list("d").unwrap_err().0.starts_with("d must be a list"));
    }

    #[test]
    fn tags_accept_maps_and_pairs() {
        let mut f = fields(json!({"a": {"team": "x"}, "b": ["team=x", "env=dev"], "c": ["nope"]}));
        assert_eq!(f.tags("a").unwrap().unwrap()["team"], "x");
        assert_eq!(f.tags("b").unwrap().unwrap()["env"], "dev");
        assert!(f.tags("c").unwrap_err().0.contains("key=value"));
    }

    #[test]
    fn unknown_fields_become_warnings() {
        let mut f = fields(json!({"ttl": "1h", "colour": "blue"}));
        assert_eq!(f.ttl("ttl").unwrap().unwrap().as_secs(), 3600);
        assert_eq!(
            f.unknown_field_warnings(),
            ["Endpoint ignored these unrecognized parameters: [colour]"]
        );
    }

    #[test]
    fn json_documents_from_strings_or_objects() {
        let mut f = fields(
            json!({"a": "{\"Version\": \"2012-10-17\"}", "b": {"V": 1}, "c": "{", "d": "[1]"}),
        );
        assert_eq!(
            f.json_document("a").unwrap().unwrap(),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(f.json_document("b").unwrap().unwrap(), r#"{"V":1}"#);
        assert!(
            f.json_document("c")
                .unwrap_err()
                .0
                .contains("not valid JSON")
        );
        assert!(f.json_document("d").unwrap_err().0.contains("JSON object"));
    }

    #[test]
    fn overlay_keeps_fields_not_set_again() {
        let mut base = fields(json!({"a": 1, "b": 2}));
        base.overlay(fields(json!({"b": 3, "a": null})));
        assert_eq!(base.int("a").unwrap(), Some(1));
        assert_eq!(base.int("b").unwrap(), Some(3));
    }
}
