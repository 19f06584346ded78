//! The visual report: one self-contained HTML file (plotly.js, styles and scripts
//! inlined: it opens offline) for a run (`ledger report --html`, `ledger replay --html`),
//! for runs side by side (`ledger report --compare`) and for a sweep (`ledger sweep
//! --html`).
//!
//! What is shown is folded from the events ([`ledger_projections::page`]); the charts
//! are plotly figures ([`charts`]); the page around them is an askama template
//! (`cli/templates/`, HTML-escaped by default). Data for the page's script goes in
//! `<script type="application/json">` blocks with `<`, `>` and `&` escaped
//! ([`script_json`]), and the script puts text into the page with `textContent` only, so
//! reasons, prompts and LLM answers (untrusted) are shown, never run.

pub mod charts;
mod pages;

pub use pages::{compare_page, run_page, sweep_page, CompareRun, SweepCell};

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::describe;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML (askama's escaper).
pub fn escape(text: &str) -> String {
    match askama::filters::escape(text, askama::filters::Html) {
        Ok(safe) => safe.to_string(),
        Err(never) => match never {},
    }
}

/// `value` as JSON that can sit inside a `<script>` element: `<`, `>`, `&` and the JavaScript
/// line separators U+2028 and U+2029 written as `\u` escapes (only strings hold them, where
/// the escape means the same character), so no text in it can end the element.
///
/// # Errors
/// Serialization errors.
pub fn script_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let json = serde_json::to_string(value)?;
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// plotly.js as the plotly crate embeds it (feature `plotly_embed_js`): its first
/// `<script>` element of [`plotly::Plot::offline_js_sources`] (the second, MathJax, is
/// left out: no chart here typesets LaTeX).
pub fn plotly_script() -> String {
    let sources = plotly::Plot::offline_js_sources();
    match sources.find("</script>") {
        Some(end) => sources[..end + "</script>".len()].to_string(),
        None => sources,
    }
}

/// Writes `html` to `path` (replacing it), naming the file on error.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, html: &str) -> Result<()> {
    std::fs::write(path, html).with_context(|| format!("writing the HTML report {}", describe::path(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_end_its_script_element() {
        let json =
            script_json(&serde_json::json!({"reason": "</script><script>alert(1)</script> & \u{2028}"})).unwrap();
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&') && !json.contains('\u{2028}'));
        // The same value read back.
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["reason"], "</script><script>alert(1)</script> & \u{2028}");
        assert_eq!(escape("<b a=\"1\">&'"), "&#60;b a=&#34;1&#34;&#62;&#38;&#39;");
    }
}
