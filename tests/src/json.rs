//! Reading fields of the server's JSON answers, panicking with the key and the document when a
//! field is missing or of the wrong type.

use serde_json::Value;

/// `v[key]` as `u64`; panics naming the key and showing `v` otherwise.
#[track_caller]
pub fn json_u64(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("JSON field `{key}` missing or not an unsigned integer in {v}"))
}

/// `v[key]` as `&str`; panics naming the key otherwise.
#[track_caller]
pub fn json_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("JSON field `{key}` missing or not a string in {v}"))
}

/// `v[key]` as `bool`; panics naming the key otherwise.
#[track_caller]
pub fn json_bool(v: &Value, key: &str) -> bool {
    v.get(key)
        .and_then(Value::as_bool)
        .unwrap_or_else(|| panic!("JSON field `{key}` missing or not a bool in {v}"))
}
