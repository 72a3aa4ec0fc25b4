//! A small EDN reader: enough of the spec (edn-format.org) for every history Jepsen and
//! Knossos write, with the line of every form, and errors instead of panics.
//!
//! Supported: nil, true, false, integers (with an `N` suffix, or too big for `i64`: kept as
//! text), floats (`M` suffix kept as text, `##Inf` `##-Inf` `##NaN`), ratios (as text),
//! strings with escapes, characters, keywords, symbols, lists, vectors, maps, sets, `;`
//! comments, commas as whitespace, `#_` discard, and tagged literals (`#inst "…"`, Clojure
//! records such as `#jepsen.independent.Tuple{:key 1 :value 2}`) kept as tag + form.

use std::fmt;

/// Nesting deeper than this is an error: a recursive reader would otherwise overflow its
/// stack on hostile input such as a million `[`, and no history nests this deep.
pub const MAX_DEPTH: usize = 200;

/// One EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// A number kept as written: big integers (`123N`, or beyond `i64`), `M` decimals,
    /// ratios.
    BigNum(String),
    /// A float.
    Float(f64),
    /// A string (escapes resolved).
    Str(String),
    /// A character (`\a`, `\newline`, `\u00e9`).
    Char(char),
    /// A keyword, without its leading colon (`:read` is `Keyword("read")`).
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `( … )`.
    List(Vec<Node>),
    /// `[ … ]`.
    Vector(Vec<Node>),
    /// `#{ … }`, in the order written.
    Set(Vec<Node>),
    /// `{ … }`, pairs in the order written.
    Map(Vec<(Node, Node)>),
    /// `#tag form`.
    Tagged(String, Box<Node>),
}

/// A value and the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Edn,
    /// Where it starts.
    pub line: usize,
}

/// A syntax error: where, what was expected, what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdnError {
    /// 1-based line.
    pub line: usize,
    /// What the grammar allows there.
    pub expected: String,
    /// What the text has there.
    pub found: String,
}

/// Reads every top-level form of `text`.
pub fn parse_all(text: &str) -> Result<Vec<Node>, EdnError> {
    let mut r = Reader {
        text,
        pos: 0,
        line: 1,
    };
    let mut forms = Vec::new();
    loop {
        r.skip_ws(0)?;
        if r.pos >= text.len() {
            return Ok(forms);
        }
        forms.push(r.read_form(0)?);
    }
}

/// Why [`for_each_op`] stopped: the text is not EDN, or the callback refused an op.
#[derive(Debug)]
pub enum OpError<E> {
    /// A syntax error.
    Syntax(EdnError),
    /// The callback's error.
    Op(E),
}

impl<E> From<EdnError> for OpError<E> {
    fn from(e: EdnError) -> Self {
        OpError::Syntax(e)
    }
}

/// Calls `op` with each op of a history, in order, without building the whole tree: each
/// top-level vector or list stands for its elements, any other top-level form for itself.
///
/// A history of a million ops would otherwise sit in memory twice (as EDN nodes, then as
/// events); this way only one op's nodes exist at a time.
pub fn for_each_op<E>(
    text: &str,
    mut op: impl FnMut(Node) -> Result<(), E>,
) -> Result<(), OpError<E>> {
    let mut r = Reader {
        text,
        pos: 0,
        line: 1,
    };
    loop {
        r.skip_ws(0)?;
        let Some(b) = r.peek() else {
            return Ok(());
        };
        if b == b'[' || b == b'(' {
            let close = if b == b'[' { b']' } else { b')' };
            let open_line = r.line;
            r.pos += 1;
            loop {
                r.skip_ws(1)?;
                match r.peek() {
                    None => {
                        let expected = format!(
                            "`{}` closing the one opened on line {open_line}",
                            close as char
                        );
                        return Err(r.error(expected, "the end of the input").into());
                    }
                    Some(c) if c == close => {
                        r.pos += 1;
                        break;
                    }
                    Some(_) => op(r.read_form(1)?).map_err(OpError::Op)?,
                }
            }
        } else {
            op(r.read_form(0)?).map_err(OpError::Op)?;
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

fn is_terminator(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | 0x0c
            | b','
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'"'
            | b';'
    )
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.text.as_bytes().get(self.pos + n).copied()
    }

    fn error(&self, expected: impl Into<String>, found: impl Into<String>) -> EdnError {
        EdnError {
            line: self.line,
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn err<T>(&self, expected: impl Into<String>, found: impl Into<String>) -> Result<T, EdnError> {
        Err(self.error(expected, found))
    }

    /// What is at the cursor, quoted, for an error message.
    fn here(&self) -> String {
        let rest = &self.text[self.pos..];
        if rest.is_empty() {
            return "the end of the input".to_string();
        }
        let end = rest.find('\n').unwrap_or(rest.len());
        crate::error::quote(&rest[..end])
    }

    /// Skips whitespace, commas, `;` comments and `#_`-discarded forms.
    fn skip_ws(&mut self, depth: usize) -> Result<(), EdnError> {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b',' => self.pos += 1,
                b if b.is_ascii_whitespace() => self.pos += 1,
                b';' => {
                    let rest = &self.text[self.pos..];
                    self.pos += rest.find('\n').unwrap_or(rest.len());
                }
                b'#' if self.peek_at(1) == Some(b'_') => {
                    if depth > MAX_DEPTH {
                        return self.err(format!("at most {MAX_DEPTH} nested #_"), "more");
                    }
                    self.pos += 2;
                    self.skip_ws(depth + 1)?;
                    if self.pos >= self.text.len() {
                        return self.err("a form to discard after #_", self.here());
                    }
                    self.read_form(depth + 1)?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn read_form(&mut self, depth: usize) -> Result<Node, EdnError> {
        if depth > MAX_DEPTH {
            return self.err(
                format!("nesting at most {MAX_DEPTH} deep"),
                "deeper nesting",
            );
        }
        let line = self.line;
        let value = match self.peek() {
            None => return self.err("a form", "the end of the input"),
            Some(b'(') => Edn::List(self.read_seq(b')', depth)?),
            Some(b'[') => Edn::Vector(self.read_seq(b']', depth)?),
            Some(b'{') => self.read_map(depth)?,
            Some(b'"') => Edn::Str(self.read_string()?),
            Some(b'\\') => Edn::Char(self.read_char()?),
            Some(b'#') => self.read_dispatch(depth)?,
            Some(b')' | b']' | b'}') => return self.err("a form", self.here()),
            Some(_) => self.read_atom()?,
        };
        Ok(Node { value, line })
    }

    /// Reads `open … close` (the cursor is on the opening byte).
    fn read_seq(&mut self, close: u8, depth: usize) -> Result<Vec<Node>, EdnError> {
        let open_line = self.line;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws(depth + 1)?;
            match self.peek() {
                None => {
                    return self.err(
                        format!(
                            "`{}` closing the one opened on line {open_line}",
                            close as char
                        ),
                        "the end of the input",
                    )
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.read_form(depth + 1)?),
            }
        }
    }

    fn read_map(&mut self, depth: usize) -> Result<Edn, EdnError> {
        let items = self.read_seq(b'}', depth)?;
        if items.len() % 2 == 1 {
            let last = &items[items.len() - 1];
            return Err(EdnError {
                line: last.line,
                expected: "a value for every key of the map".into(),
                found: format!("the key {} without one", print(&last.value)),
            });
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(Edn::Map(pairs))
    }

    fn read_dispatch(&mut self, depth: usize) -> Result<Edn, EdnError> {
        match self.peek_at(1) {
            Some(b'{') => {
                self.pos += 1;
                Ok(Edn::Set(self.read_seq(b'}', depth)?))
            }
            Some(b'#') => {
                self.pos += 2;
                let tok = self.token();
                match tok {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(Edn::Float(f64::NAN)),
                    _ => self.err(
                        "##Inf, ##-Inf or ##NaN",
                        crate::error::quote(&format!("##{tok}")),
                    ),
                }
            }
            Some(b) if !is_terminator(b) && b != b'#' => {
                self.pos += 1;
                let tag = self.token().to_string();
                self.skip_ws(depth + 1)?;
                if self.pos >= self.text.len() {
                    return self.err(
                        format!("a form after the tag #{tag}"),
                        "the end of the input",
                    );
                }
                let form = self.read_form(depth + 1)?;
                Ok(Edn::Tagged(tag, Box::new(form)))
            }
            _ => self.err("a set #{…}, a tag #name or a discard #_", self.here()),
        }
    }

    /// The run of non-terminator bytes at the cursor (always on a char boundary, since
    /// terminators are ASCII).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_terminator(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn read_atom(&mut self) -> Result<Edn, EdnError> {
        let tok = self.token();
        if let Some(name) = tok.strip_prefix(':') {
            if name.is_empty() {
                return self.err("a keyword name after `:`", crate::error::quote(tok));
            }
            return Ok(Edn::Keyword(name.to_string()));
        }
        let b = tok.as_bytes();
        let numeric = b[0].is_ascii_digit()
            || (b.len() > 1 && matches!(b[0], b'+' | b'-') && b[1].is_ascii_digit());
        if numeric {
            return parse_number(tok)
                .ok_or(())
                .or_else(|()| self.err("a number", crate::error::quote(tok)));
        }
        Ok(match tok {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ => Edn::Symbol(tok.to_string()),
        })
    }

    fn read_string(&mut self) -> Result<String, EdnError> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(i) = rest.find(['"', '\\']) else {
                return self.err(
                    format!("`\"` closing the string opened on line {start_line}"),
                    "the end of the input",
                );
            };
            out.push_str(&rest[..i]);
            self.line += rest[..i].matches('\n').count();
            self.pos += i;
            if self.peek() == Some(b'"') {
                self.pos += 1;
                return Ok(out);
            }
            self.pos += 1;
            let c = match self.peek() {
                Some(b'n') => '\n',
                Some(b't') => '\t',
                Some(b'r') => '\r',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'u') => {
                    let c = self.hex4(self.pos + 1)?;
                    self.pos += 4;
                    c
                }
                _ => {
                    return self.err(
                        "a string escape (\\n \\t \\r \\b \\f \\\" \\\\ \\uXXXX)",
                        self.here(),
                    )
                }
            };
            self.pos += 1;
            out.push(c);
        }
    }

    fn hex4(&self, at: usize) -> Result<char, EdnError> {
        let digits = self.text.get(at..at + 4).unwrap_or("");
        u32::from_str_radix(digits, 16)
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(char::from_u32)
            .map_or_else(
                || {
                    self.err(
                        "four hex digits of a unicode character",
                        crate::error::quote(digits),
                    )
                },
                Ok,
            )
    }

    fn read_char(&mut self) -> Result<char, EdnError> {
        self.pos += 1;
        // The first character is taken whatever it is (`\(` is the character `(`).
        let Some(first) = self.text[self.pos..].chars().next() else {
            return self.err("a character after `\\`", "the end of the input");
        };
        let start = self.pos;
        self.pos += first.len_utf8();
        while self.peek().is_some_and(|b| !is_terminator(b)) {
            self.pos += 1;
        }
        let tok = &self.text[start..self.pos];
        match tok {
            "newline" => Ok('\n'),
            "space" => Ok(' '),
            "tab" => Ok('\t'),
            "return" => Ok('\r'),
            "formfeed" => Ok('\u{c}'),
            "backspace" => Ok('\u{8}'),
            t if t.len() == 5 && t.starts_with('u') => self.hex4(start + 1),
            t if t.chars().count() == 1 => Ok(first),
            t => self.err(
                "a character such as \\a, \\newline or \\u00e9",
                crate::error::quote(&format!("\\{t}")),
            ),
        }
    }
}

fn parse_number(tok: &str) -> Option<Edn> {
    if let Some(digits) = tok.strip_suffix('N') {
        return int_digits(digits).then(|| Edn::BigNum(tok.to_string()));
    }
    if let Some(dec) = tok.strip_suffix('M') {
        return dec
            .parse::<f64>()
            .ok()
            .map(|_| Edn::BigNum(tok.to_string()));
    }
    if let Some((n, d)) = tok.split_once('/') {
        return (int_digits(n) && d.bytes().all(|b| b.is_ascii_digit()) && !d.is_empty())
            .then(|| Edn::BigNum(tok.to_string()));
    }
    if int_digits(tok) {
        return Some(match tok.parse::<i64>() {
            Ok(i) => Edn::Int(i),
            Err(_) => Edn::BigNum(tok.to_string()),
        });
    }
    // Rust's float syntax accepts "inf" and "nan"; EDN's does not, and they cannot get here
    // (a number token starts with a digit or a sign and a digit).
    tok.parse::<f64>().ok().map(Edn::Float)
}

fn int_digits(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// Prints a value as EDN text (used for tagged literals and non-string map keys when they
/// become JSON strings, and in error messages).
pub fn print(v: &Edn) -> String {
    let mut s = String::new();
    write_edn_value(v, &mut s).expect("writing to a String cannot fail");
    s
}

fn write_seq(open: &str, items: &[Node], close: &str, out: &mut impl fmt::Write) -> fmt::Result {
    out.write_str(open)?;
    for (i, n) in items.iter().enumerate() {
        if i > 0 {
            out.write_char(' ')?;
        }
        write_edn_value(&n.value, out)?;
    }
    out.write_str(close)
}

fn write_edn_value(v: &Edn, out: &mut impl fmt::Write) -> fmt::Result {
    match v {
        Edn::Nil => out.write_str("nil"),
        Edn::Bool(b) => write!(out, "{b}"),
        Edn::Int(i) => write!(out, "{i}"),
        Edn::BigNum(s) | Edn::Symbol(s) => out.write_str(s),
        Edn::Float(f) => super::write::write_float(*f, out),
        Edn::Str(s) => super::write::write_string(s, out),
        Edn::Char(c) => match c {
            '\n' => out.write_str("\\newline"),
            ' ' => out.write_str("\\space"),
            '\t' => out.write_str("\\tab"),
            '\r' => out.write_str("\\return"),
            c if c.is_control() => write!(out, "\\u{:04x}", *c as u32),
            c => write!(out, "\\{c}"),
        },
        Edn::Keyword(k) => write!(out, ":{k}"),
        Edn::List(items) => write_seq("(", items, ")", out),
        Edn::Vector(items) => write_seq("[", items, "]", out),
        Edn::Set(items) => write_seq("#{", items, "}", out),
        Edn::Map(pairs) => {
            out.write_char('{')?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_edn_value(&k.value, out)?;
                out.write_char(' ')?;
                write_edn_value(&v.value, out)?;
            }
            out.write_char('}')
        }
        Edn::Tagged(tag, form) => {
            write!(out, "#{tag} ")?;
            write_edn_value(&form.value, out)
        }
    }
}
