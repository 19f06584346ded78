//! One JSON lines row: a flat JSON object split into keys and value texts, numbers kept
//! as written.
//!
//! serde_json (without its `arbitrary_precision` feature, which would change every JSON
//! number in the workspace) reads numbers through `f64`, and `f64` does not hold
//! `0.30000000000000004` or a price of 20 significant digits as written. A market data
//! row is a flat object, so this module splits it itself: string keys and values are
//! decoded by serde_json (escapes, UTF-16 surrogates), a number's text is checked
//! against JSON's number grammar and kept as it is, for [`super::layout::parse_decimal`]
//! to read exactly. `true` and `false` become those words, `null` an absent value.
//! Nested objects and arrays are refused: no market data field is one.
//!
//! Duplicate keys (ignoring case, as columns are matched) are refused: JSON leaves
//! their meaning open, and serde_json silently keeps the last.

/// Why a line is not a flat JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// The key at fault, when there is one.
    pub(crate) key: Option<String>,
    /// What is wrong.
    pub(crate) message: String,
}

impl JsonError {
    fn at(position: usize, what: &str) -> JsonError {
        JsonError { key: None, message: format!("invalid JSON at byte {}: {what}", position + 1) }
    }
}

/// The entries of the flat JSON object that `text` holds (surrounding whitespace
/// allowed), in order: each key, and its value as text (`None` for `null`).
///
/// # Errors
/// [`JsonError`] for anything but one flat object of string, number, boolean and null
/// values with distinct keys.
pub(crate) fn flat_object(text: &str) -> Result<Vec<(String, Option<String>)>, JsonError> {
    let bytes = text.as_bytes();
    let mut i = skip_space(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return Err(JsonError::at(i, "expected `{` (each line must be one JSON object)"));
    }
    i = skip_space(bytes, i + 1);
    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    if bytes.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if bytes.get(i) != Some(&b'"') {
                return Err(JsonError::at(i, "expected a string key"));
            }
            let end = string_end(bytes, i)?;
            let key: String = decode_string(&text[i..end], i)?;
            i = skip_space(bytes, end);
            if bytes.get(i) != Some(&b':') {
                return Err(JsonError::at(i, "expected `:`"));
            }
            i = skip_space(bytes, i + 1);
            let (value, end) = value(text, i, &key)?;
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                return Err(JsonError {
                    message: format!("the key {key:?} appears twice (first as {first:?})"),
                    key: Some(key),
                });
            }
            entries.push((key, value));
            i = skip_space(bytes, end);
            match bytes.get(i) {
                Some(b',') => i = skip_space(bytes, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(JsonError::at(i, "expected `,` or `}`")),
            }
        }
    }
    i = skip_space(bytes, i);
    if i != bytes.len() {
        return Err(JsonError::at(i, "text after the object"));
    }
    Ok(entries)
}

/// The value at `start` and the position after it.
fn value(text: &str, start: usize, key: &str) -> Result<(Option<String>, usize), JsonError> {
    let bytes = text.as_bytes();
    let literal = |word: &str| bytes.get(start..start + word.len()) == Some(word.as_bytes());
    match bytes.get(start) {
        Some(b'"') => {
            let end = string_end(bytes, start)?;
            Ok((Some(decode_string(&text[start..end], start)?), end))
        }
        Some(b'{' | b'[') => Err(JsonError {
            key: Some(key.to_string()),
            message: format!("the value of {key:?} is a nested object or array, not a number or a string"),
        }),
        Some(b't') if literal("true") => Ok((Some("true".into()), start + 4)),
        Some(b'f') if literal("false") => Ok((Some("false".into()), start + 5)),
        Some(b'n') if literal("null") => Ok((None, start + 4)),
        Some(b'-' | b'0'..=b'9') => {
            let end = number_end(bytes, start)
                .ok_or_else(|| JsonError::at(start, &format!("the value of {key:?} is not a JSON number")))?;
            Ok((Some(text[start..end].to_string()), end))
        }
        _ => Err(JsonError::at(start, "expected a value")),
    }
}

/// The position after the JSON string that starts (with `"`) at `start`.
fn string_end(bytes: &[u8], start: usize) -> Result<usize, JsonError> {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(JsonError::at(start, "a string is not closed"))
}

/// A JSON string literal (quotes included) decoded by serde_json.
fn decode_string(literal: &str, at: usize) -> Result<String, JsonError> {
    serde_json::from_str(literal).map_err(|e| JsonError::at(at, &e.to_string()))
}

/// The position after the JSON number at `start`:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; `None` when there is none.
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits =
        |from: usize| bytes.get(from..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
    let mut i = start + usize::from(bytes.get(start) == Some(&b'-'));
    let whole = digits(i);
    if whole == 0 || (whole > 1 && bytes[i] == b'0') {
        return None;
    }
    i += whole;
    if bytes.get(i) == Some(&b'.') {
        let fraction = digits(i + 1);
        if fraction == 0 {
            return None;
        }
        i += 1 + fraction;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        i += usize::from(matches!(bytes.get(i), Some(b'+' | b'-')));
        let exponent = digits(i);
        if exponent == 0 {
            return None;
        }
        i += exponent;
    }
    Some(i)
}

/// The first position at or after `i` that is not JSON whitespace.
fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
        flat_object(text).map_err(|e| e.message)
    }

    fn some(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
    }

    #[test]
    fn flat_objects_keep_numbers_as_written() {
        // TC0: numbers keep every digit; strings are decoded; order is the line's.
        assert_eq!(
            entries(r#" {"ts": 1570752011620, "price": 0.30000000000000004, "s\u0069de": "b\"uy"} "#),
            Ok(some(&[("ts", Some("1570752011620")), ("price", Some("0.30000000000000004")), ("side", Some("b\"uy"))]))
        );
        // TC1: literals, exponents, the empty object.
        assert_eq!(
            entries(r#"{"a":true,"b":false,"c":null,"d":-1.5E+3}"#),
            Ok(some(&[("a", Some("true")), ("b", Some("false")), ("c", None), ("d", Some("-1.5E+3"))]))
        );
        assert_eq!(entries("{}"), Ok(vec![]));
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            ("TC0 not an object", "[1,2]", "expected `{`"),
            ("TC1 nested object", r#"{"price": {"v": 1}}"#, "nested object"),
            ("TC2 nested array", r#"{"price": [1]}"#, "nested object"),
            ("TC3 duplicate key", r#"{"price": 1, "Price": 2}"#, "appears twice"),
            ("TC4 leading zero", r#"{"price": 01}"#, "not a JSON number"),
            ("TC5 bare dot", r#"{"price": 1.}"#, "not a JSON number"),
            ("TC6 NaN", r#"{"price": NaN}"#, "expected a value"),
            ("TC7 unclosed", r#"{"price": 1"#, "expected `,` or `}`"),
            ("TC8 trailing text", r#"{"price": 1} x"#, "text after the object"),
            ("TC9 unclosed string", r#"{"price": "1}"#, "not closed"),
            ("TC10 bad escape", r#"{"price": "\q"}"#, "invalid JSON"),
            ("TC11 trailing comma", r#"{"price": 1,}"#, "expected a string key"),
            ("TC12 empty", "", "expected `{`"),
            ("TC13 lone backslash at the end", "{\"a\\", "not closed"),
        ];
        for (label, text, expected) in cases {
            let why = entries(text).expect_err(label);
            assert!(why.contains(expected), "{label}: {why:?} should mention {expected:?}");
        }
    }
}
