//! Reading JSON request bodies and validating their fields, listing every failure.

use crate::base::error::ApiError;
use serde_json::{Map, Value};

/// A parsed JSON object body.
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses the body; an empty body counts as `{}`.
    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => {
                if let Some(field) = m.iter().find(|(_, v)| has_nul(v)).map(|(k, _)| k) {
                    return Err(ApiError::BadRequest(
                        "invalid_payload",
                        format!("{field} must not contain the NUL character (\\u0000)"),
                    ));
                }
                Ok(Body(m))
            }
            Ok(_) => Err(ApiError::BadRequest(
                "invalid_json",
                "request body must be a JSON object".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(
                "invalid_json",
                format!("malformed JSON body: {e}"),
            )),
        }
    }

    /// A string field: `Ok(None)` when absent or null, an error line when of another type.
    pub fn opt_str(&self, name: &str, errors: &mut Vec<String>) -> Option<String> {
        match self.0.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(format!("{name} must be a string"));
                None
            }
        }
    }

    /// Whether the field is present (null included).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A boolean field: `None` when absent or null.
    pub fn opt_bool(&self, name: &str, errors: &mut Vec<String>) -> Option<bool> {
        match self.0.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push(format!("{name} must be a boolean"));
                None
            }
        }
    }

    /// A field, as given.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A field, as given, moved out of the body.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// An integer field: `None` when absent or null.
    pub fn opt_i64(&self, name: &str, errors: &mut Vec<String>) -> Option<i64> {
        match self.0.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(n) => Some(n),
                None => {
                    errors.push(format!("{name} must be an integer"));
                    None
                }
            },
        }
    }

    /// A required non-negative integer field.
    pub fn req_count(&self, name: &str, errors: &mut Vec<String>) -> i64 {
        match self.0.get(name).and_then(Value::as_i64) {
            Some(n) if n >= 0 => n,
            _ => {
                errors.push(format!("{name} must be a non-negative integer"));
                0
            }
        }
    }

    /// A required uuid field.
    pub fn req_uuid(&self, name: &str, errors: &mut Vec<String>) -> uuid::Uuid {
        match self
            .0
            .get(name)
            .and_then(Value::as_str)
            .map(uuid::Uuid::parse_str)
        {
            Some(Ok(id)) => id,
            _ => {
                errors.push(format!("{name} must be a uuid"));
                uuid::Uuid::nil()
            }
        }
    }

    /// A required string field.
    pub fn req_str(&self, name: &str, errors: &mut Vec<String>) -> String {
        let before = errors.len();
        match self.opt_str(name, errors) {
            Some(s) => s,
            None => {
                if errors.len() == before {
                    errors.push(format!("{name} should not be empty"));
                }
                String::new()
            }
        }
    }
}

/// True when a string anywhere in `v` holds U+0000, which PostgreSQL text cannot store.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        assert!(Body::parse(b"").is_ok());
        assert_eq!(Body::parse(b"[1]").err().unwrap().code(), "invalid_json");
        assert_eq!(Body::parse(b"{x").err().unwrap().code(), "invalid_json");
        let nul = Body::parse(br#"{"name":"a\u0000b"}"#).err().unwrap();
        assert_eq!(nul.code(), "invalid_payload");
        assert!(nul.to_string().contains("name"));
        assert!(Body::parse(br#"{"a":[{"b":"\u0000"}]}"#).is_err());
        let b = Body::parse(br#"{"a":"x","n":3}"#).unwrap();
        let mut errs = vec![];
        assert_eq!(b.req_str("a", &mut errs), "x");
        b.req_str("n", &mut errs);
        b.req_str("missing", &mut errs);
        assert_eq!(
            errs,
            vec!["n must be a string", "missing should not be empty"]
        );
    }
}
