//! Escaping of user data (history values, keys, file names) into HTML text and inline JSON.
//!
//! History values are user data: a value like `</script><script>alert(1)</script>` must stay
//! text. Everything written into markup goes through [`html`]; everything embedded in the
//! page's `<script type="application/json">` goes through [`script_json`], and the page's
//! script only ever puts strings into the DOM with `textContent`, never `innerHTML`.

use serde::Serialize;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Serializes `v` as JSON that is safe inside a `<script>` element: `<`, `>` and `&` become
/// `\u003c`, `\u003e`, `\u0026` (so no `</script>` or `<!--` can appear), and the line
/// separators U+2028 / U+2029 are escaped too. The result is still valid JSON with the same
/// meaning, since these characters can only occur inside JSON strings.
pub fn script_json<T: Serialize>(v: &T) -> Result<String, serde_json::Error> {
    let raw = serde_json::to_string(v)?;
    let mut out = String::with_capacity(raw.len() + 64);
    for c in raw.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(html("plain ü"), "plain ü");
    }

    #[test]
    fn script_json_cannot_close_the_script_and_round_trips() {
        let v = json!({"v": "</script><script>alert(1)</script><!-- \u{2028} &amp;"});
        let s = script_json(&v).unwrap();
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        assert!(!s.contains('\u{2028}'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
