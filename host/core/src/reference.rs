//! The `@<NAME::PATH?DEFAULT>` reference engine (spec §2.1-2.2, 2.4).
//!
//! Tokens live inside JSON string values. They are found by a hand-written
//! scanner that reproduces the leftmost, non-greedy match of POP's Java regex
//! `@<(?<reference>.+?)(::(?<path>.+?))?>` (where `.` excludes Java's line
//! terminators), without the cost of a regex engine on the executor's hot path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use serde_json::{Map, Value};

use crate::model::Operation;
use crate::params::{ParamsMap, keys};

/// Suffix of the context entry holding an operation's output (`op.out`).
pub const OUT_SUFFIX: &str = ".out";
/// Names with this prefix are built-ins supplied by the runtime, never operations.
pub const BUILTIN_PREFIX: &str = "pop.";

const PREFIX: &[u8] = b"@<";

/// Where token names are looked up.
pub trait ReferenceContext {
    fn lookup(&self, name: &str) -> Option<&Value>;
}

impl<S: BuildHasher> ReferenceContext for HashMap<String, Value, S> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl ReferenceContext for BTreeMap<String, Value> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl ReferenceContext for Map<String, Value> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl ReferenceContext for ParamsMap {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl<T: ReferenceContext + ?Sized> ReferenceContext for &T {
    fn lookup(&self, name: &str) -> Option<&Value> {
        (**self).lookup(name)
    }
}

/// What to use when the pointer does not exist in NAME's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback<'a> {
    /// No `?`: a missing pointer is an invalid reference.
    None,
    /// Trailing `?`: a missing pointer yields JSON null.
    Null,
    /// `?DEF`: a missing pointer yields the string DEF.
    Default(&'a str),
}

/// One `@<...>` occurrence inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The whole token, `@<` through `>`.
    pub text: &'a str,
    pub name: &'a str,
    /// PATH before its first `?`, as written (no leading `/` added).
    pub pointer: Option<&'a str>,
    pub fallback: Fallback<'a>,
    /// Byte offset of `text` in the scanned string.
    pub start: usize,
}

impl<'a> Token<'a> {
    fn new(s: &'a str, start: usize, name_end: usize, path: Option<(usize, usize)>, end: usize) -> Self {
        let name = &s[start + PREFIX.len()..name_end];
        let (pointer, fallback) = match path {
            None => (None, Fallback::None),
            Some((from, to)) => {
                let path = &s[from..to];
                match path.split_once('?') {
                    None => (Some(path), Fallback::None),
                    Some((ptr, "")) => (Some(ptr), Fallback::Null),
                    Some((ptr, def)) => (Some(ptr), Fallback::Default(def)),
                }
            }
        };
        Token {
            text: &s[start..end],
            name,
            pointer,
            fallback,
            start,
        }
    }

    /// NAME with a trailing `.out` removed: the operation this token waits for.
    pub fn operation_name(&self) -> &'a str {
        self.name.strip_suffix(OUT_SUFFIX).unwrap_or(self.name)
    }

    pub fn is_builtin(&self) -> bool {
        self.name.starts_with(BUILTIN_PREFIX)
    }
}

/// Java's `.` (no DOTALL) refuses these; returns the terminator's byte length.
/// Checking at a UTF-8 continuation byte is harmless: none of the patterns
/// starts with one.
#[inline]
fn line_terminator_len(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'\n' | b'\r' => 1,
        0xC2 if b.get(i + 1) == Some(&0x85) => 2,
        0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => 3,
        _ => 0,
    }
}

#[inline]
fn utf8_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

enum Scan<'a> {
    Found(Token<'a>),
    /// No token starts here; no token can start before this offset either.
    NoneBefore(usize),
}

/// Tries to match a token at `start` (where `@<` is). Mirrors the regex's
/// backtracking order: for each NAME length (shortest first) try `::PATH>`
/// (shortest PATH), then `>`.
fn scan_at(s: &str, start: usize) -> Scan<'_> {
    let b = s.as_bytes();
    let len = b.len();
    let p = start + PREFIX.len();
    if p >= len {
        return Scan::NoneBefore(len);
    }
    if line_terminator_len(b, p) > 0 {
        return Scan::NoneBefore(p);
    }
    // NAME needs at least one character, which may be anything, even '>'.
    let mut q = p + utf8_width(b[p]);
    // Once a PATH scan starting at or after this offset found no '>' before
    // the end of the line, later PATH scans cannot succeed either; remembering
    // it keeps pathological inputs like "@<a::::::…" linear.
    let mut path_dead_from = usize::MAX;
    while q < len {
        if b[q] == b':' && q + 1 < len && b[q + 1] == b':' {
            let r = q + 2;
            if r < len && line_terminator_len(b, r) == 0 {
                let mut j = r + utf8_width(b[r]);
                if j < path_dead_from {
                    let from = j;
                    while j < len {
                        if b[j] == b'>' {
                            return Scan::Found(Token::new(s, start, q, Some((r, j)), j + 1));
                        }
                        if line_terminator_len(b, j) > 0 {
                            break;
                        }
                        j += 1;
                    }
                    path_dead_from = from;
                }
            }
        }
        if b[q] == b'>' {
            return Scan::Found(Token::new(s, start, q, None, q + 1));
        }
        if line_terminator_len(b, q) > 0 {
            return Scan::NoneBefore(q);
        }
        q += 1;
    }
    Scan::NoneBefore(len)
}

/// Iterator over the tokens of a string, left to right, non-overlapping.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let start = find_open(self.s, self.pos)?;
            match scan_at(self.s, start) {
                Scan::Found(tok) => {
                    self.pos = tok.start + tok.text.len();
                    return Some(tok);
                }
                Scan::NoneBefore(next) => self.pos = next.max(start + 1),
            }
        }
    }
}

/// All tokens of `s`, as the regex's successive `find()` calls would return.
pub fn tokens(s: &str) -> Tokens<'_> {
    Tokens { s, pos: 0 }
}

/// The token when `s` is exactly one token and nothing else.
pub fn exact_token(s: &str) -> Option<Token<'_>> {
    if !s.starts_with("@<") {
        return None;
    }
    match scan_at(s, 0) {
        Scan::Found(tok) if tok.text.len() == s.len() => Some(tok),
        _ => None,
    }
}

/// References that could not be resolved.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct References {
    /// Full token text of tokens whose NAME is not in the context.
    pub missing: BTreeSet<String>,
    /// `@<NAME::/PTR>` for pointers that do not exist (no `?` fallback), and the
    /// token text of objects/arrays used inside a composite string.
    pub invalid: BTreeSet<String>,
}

impl References {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }

    pub fn extend(&mut self, other: References) {
        self.missing.extend(other.missing);
        self.invalid.extend(other.invalid);
    }
}

static NULL: Value = Value::Null;

enum Resolved<'c, 's> {
    Node(&'c Value),
    /// A `?DEF` default: always a string.
    Text(&'s str),
}

impl Resolved<'_, '_> {
    fn into_value(self) -> Value {
        match self {
            Resolved::Node(v) => v.clone(),
            Resolved::Text(t) => Value::String(t.to_owned()),
        }
    }
}

fn resolve_token<'c, 's>(
    tok: &Token<'s>,
    ctx: &'c impl ReferenceContext,
    refs: &mut References,
) -> Option<Resolved<'c, 's>> {
    let Some(value) = ctx.lookup(tok.name) else {
        refs.missing.insert(tok.text.to_owned());
        return None;
    };
    let pointer = match tok.pointer {
        None => return Some(Resolved::Node(value)),
        // Jackson's `at()` has no syntax for the root, so POP special-cases
        // blank and "/" as "the whole value".
        Some(p) if p == "/" || p.trim().is_empty() => return Some(Resolved::Node(value)),
        Some(p) => p,
    };
    let found = json_pointer(value, pointer.strip_prefix('/').unwrap_or(pointer));
    match (found, tok.fallback) {
        (Some(v), _) => Some(Resolved::Node(v)),
        (None, Fallback::Null) => Some(Resolved::Node(&NULL)),
        (None, Fallback::Default(d)) => Some(Resolved::Text(d)),
        (None, Fallback::None) => {
            let slash = if pointer.starts_with('/') { "" } else { "/" };
            refs.invalid.insert(format!("@<{}::{slash}{pointer}>", tok.name));
            None
        }
    }
}

/// RFC 6901 lookup of `pointer` (leading '/' already removed) with the same
/// rules as `Value::pointer`, minus its per-segment allocations: escapes are
/// decoded only in segments that contain '~'.
fn json_pointer<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    let mut target = value;
    for segment in pointer.split('/') {
        let key: std::borrow::Cow<'_, str> = if segment.contains('~') {
            segment.replace("~1", "/").replace("~0", "~").into()
        } else {
            segment.into()
        };
        target = match target {
            Value::Object(map) => map.get(key.as_ref())?,
            Value::Array(items) => items.get(array_index(&key)?)?,
            _ => return None,
        };
    }
    Some(target)
}

/// Decimal index without sign or leading zeros, as RFC 6901 requires.
fn array_index(s: &str) -> Option<usize> {
    if s.starts_with('+') || (s.starts_with('0') && s.len() != 1) {
        return None;
    }
    s.parse().ok()
}

/// Offset of the next "@<" in `s` at or after `from`. A byte loop beats
/// `str::find` here: its two-way searcher setup dominates on short strings.
#[inline]
fn find_open(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = from;
    while i + 1 < b.len() {
        if b[i] == b'@' && b[i + 1] == b'<' {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The replacement for one string value, or `None` to keep it as it is.
fn resolve_str(s: &str, ctx: &impl ReferenceContext, refs: &mut References) -> Option<Value> {
    // Most strings hold no reference; skip them with one substring search.
    find_open(s, 0)?;
    if let Some(tok) = exact_token(s) {
        // A whole-string token keeps the JSON type of what it refers to.
        // Unlike POP, booleans are substituted too (spec §9.6).
        return resolve_token(&tok, ctx, refs).map(Resolved::into_value);
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    for tok in tokens(s) {
        let Some(resolved) = resolve_token(&tok, ctx, refs) else {
            continue;
        };
        let text: std::borrow::Cow<'_, str> = match resolved {
            Resolved::Text(t) => t.into(),
            Resolved::Node(Value::String(t)) => t.as_str().into(),
            Resolved::Node(Value::Null) => "null".into(),
            Resolved::Node(Value::Bool(b)) => if *b { "true" } else { "false" }.into(),
            Resolved::Node(Value::Number(n)) => n.to_string().into(),
            Resolved::Node(Value::Array(_) | Value::Object(_)) => {
                refs.invalid.insert(tok.text.to_owned());
                continue;
            }
        };
        // Replacing by span, in one pass, means substituted text is never
        // rescanned for tokens (POP's repeated replace-all could do that).
        let buf = out.get_or_insert_with(|| String::with_capacity(s.len()));
        buf.push_str(&s[copied..tok.start]);
        buf.push_str(&text);
        copied = tok.start + tok.text.len();
    }
    out.map(|mut buf| {
        buf.push_str(&s[copied..]);
        Value::String(buf)
    })
}

/// Substitutes every token of every string value in `value` (object field
/// values and array elements, never keys). The walk uses an explicit stack so
/// arbitrarily deep documents cannot overflow the call stack.
pub fn resolve_in_place(value: &mut Value, ctx: &impl ReferenceContext) -> References {
    let mut refs = References::default();
    let mut stack: Vec<&mut Value> = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(fields) => stack.extend(fields.values_mut()),
            Value::String(s) => {
                if let Some(replacement) = resolve_str(s, ctx, &mut refs) {
                    *node = replacement;
                }
            }
            _ => {}
        }
    }
    refs
}

enum Frame<'v> {
    Array(std::slice::Iter<'v, Value>, Vec<Value>),
    Object(serde_json::map::Iter<'v>, Map<String, Value>, Option<String>),
}

/// Like [`resolve_in_place`] on a copy. The copy is built with an explicit
/// stack too (`Value::clone` recurses), so deep inputs are safe here as well.
pub fn resolve(value: &Value, ctx: &impl ReferenceContext) -> (Value, References) {
    let mut refs = References::default();
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        let mut done = match next.take() {
            Some(Value::Array(items)) => {
                frames.push(Frame::Array(items.iter(), Vec::with_capacity(items.len())));
                None
            }
            Some(Value::Object(fields)) => {
                frames.push(Frame::Object(fields.iter(), Map::with_capacity(fields.len()), None));
                None
            }
            Some(Value::String(s)) => Some(resolve_str(s, ctx, &mut refs).unwrap_or_else(|| Value::String(s.clone()))),
            Some(scalar) => Some(scalar.clone()),
            None => None,
        };
        // Hand finished values to their parents until one has more children.
        loop {
            let Some(frame) = frames.last_mut() else {
                return (done.expect("root value is produced last"), refs);
            };
            match frame {
                Frame::Array(iter, out) => {
                    if let Some(v) = done.take() {
                        out.push(v);
                    }
                    if let Some(child) = iter.next() {
                        next = Some(child);
                        break;
                    }
                }
                Frame::Object(iter, out, key) => {
                    if let Some(v) = done.take() {
                        out.insert(key.take().expect("key of pending field"), v);
                    }
                    if let Some((k, child)) = iter.next() {
                        *key = Some(k.clone());
                        next = Some(child);
                        break;
                    }
                }
            }
            done = Some(match frames.pop() {
                Some(Frame::Array(_, out)) => Value::Array(out),
                Some(Frame::Object(_, out, _)) => Value::Object(out),
                None => unreachable!("frame was just inspected"),
            });
        }
    }
}

/// Records the unresolved references of `value` without building the result.
pub fn unresolved(value: &Value, ctx: &impl ReferenceContext) -> References {
    let mut refs = References::default();
    let mut stack: Vec<&Value> = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(fields) => stack.extend(fields.values()),
            Value::String(s) => {
                resolve_str(s, ctx, &mut refs);
            }
            _ => {}
        }
    }
    refs
}

/// Calls `f` for every token in the string values of `value`.
pub fn for_each_token<'v>(value: &'v Value, mut f: impl FnMut(Token<'v>)) {
    let mut stack: Vec<&Value> = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(fields) => stack.extend(fields.values()),
            Value::String(s) => tokens(s).for_each(&mut f),
            _ => {}
        }
    }
}

/// Names listed in an operation's `params.dependsOn`: a comma-separated string
/// or an array of such strings; entries are trimmed and empty ones dropped.
pub fn depends_on(op: &Operation) -> impl Iterator<Item = &str> {
    let value = op.params.as_ref().and_then(|p| p.get(keys::DEPENDS_ON));
    let parts: Vec<&str> = match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    parts
        .into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The operations `op` waits for: the NAMEs of its payload tokens (built-in
/// `pop.` names excluded) with a trailing `.out` removed, plus `dependsOn`.
pub fn operation_dependencies(op: &Operation) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    if let Some(payload) = &op.payload {
        for_each_token(payload, |tok| {
            if !tok.is_builtin() {
                deps.insert(tok.operation_name().to_owned());
            }
        });
    }
    deps.extend(depends_on(op).map(str::to_owned));
    deps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> HashMap<String, Value> {
        let mut m = HashMap::new();
        m.insert("sample.out".into(), json!({"subItem": {"item": "55", "item3": "45"}}));
        m.insert("s".into(), json!("a value"));
        m.insert("a".into(), json!(85));
        m.insert("b".into(), json!(95));
        m.insert("t".into(), json!(true));
        m.insert("f".into(), json!(false));
        m.insert("n".into(), json!(null));
        m.insert("arr".into(), json!([10, [20, {"k": "deep"}]]));
        m.insert("esc".into(), json!({"a/b": 1, "m~n": 2, "~1": 3}));
        m.insert("ünï.out".into(), json!({"clé": "välue ✓", "emoji": "🎉"}));
        m
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spec_worked_examples() {
        // (input, expected, missing, invalid)
        let cases: Vec<(&str, Value, &[&str], &[&str])> = vec![
            ("@<sample.out::subItem/item>-", json!("55-"), &[], &[]),
            ("@<sample.out::subItem/item3/nothere?95>", json!("95"), &[], &[]),
            ("@<sample.out::subItem/item3?95>", json!("45"), &[], &[]),
            ("-@<sample.out::/wrong?>", json!("-null"), &[], &[]),
            ("@<sample.out::/wrong?>", json!(null), &[], &[]),
            ("@<unknown>", json!("@<unknown>"), &["@<unknown>"], &[]),
            (
                "@<sample.out::/wrong>",
                json!("@<sample.out::/wrong>"),
                &[],
                &["@<sample.out::/wrong>"],
            ),
            (
                "@<sample.out::/>",
                json!({"subItem": {"item": "55", "item3": "45"}}),
                &[],
                &[],
            ),
            ("@<sample.out::subItem>", json!({"item": "55", "item3": "45"}), &[], &[]),
            (
                "@<sample.out>",
                json!({"subItem": {"item": "55", "item3": "45"}}),
                &[],
                &[],
            ),
            ("-@<sample.out::subItem/item3/nothere?95>", json!("-95"), &[], &[]),
            ("-@<sample.out::/wrongitem?95>", json!("-95"), &[], &[]),
            ("x@<s>y", json!("xa valuey"), &[], &[]),
            ("--@<a>--@<b>", json!("--85--95"), &[], &[]),
            ("@<a>", json!(85), &[], &[]),
            ("@<s>", json!("a value"), &[], &[]),
            // Booleans: substituted with their type when exact (fix of §9.6).
            ("@<t>", json!(true), &[], &[]),
            ("@<f>", json!(false), &[], &[]),
            ("is @<t>/@<f>", json!("is true/false"), &[], &[]),
            ("@<n>", json!(null), &[], &[]),
            ("n=@<n>", json!("n=null"), &[], &[]),
            // Objects cannot go into composite strings.
            (
                "-@<sample.out::subItem>-",
                json!("-@<sample.out::subItem>-"),
                &[],
                &["@<sample.out::subItem>"],
            ),
            ("@<a>@<arr>", json!("85@<arr>"), &[], &["@<arr>"]),
            // Missing vs invalid, and the pointer normalised in the record.
            (
                "@<nope::/x> @<sample.out::wrong> @<a>",
                json!("@<nope::/x> @<sample.out::wrong> 85"),
                &["@<nope::/x>"],
                &["@<sample.out::/wrong>"],
            ),
            // Pointers: array indices and RFC 6901 escapes.
            ("@<arr::/0>", json!(10), &[], &[]),
            ("@<arr::1/1/k>", json!("deep"), &[], &[]),
            ("@<arr::/5>", json!("@<arr::/5>"), &[], &["@<arr::/5>"]),
            ("@<arr::/01?x>", json!("x"), &[], &[]),
            ("@<arr::/+1?x>", json!("x"), &[], &[]),
            ("@<arr::/1/0>", json!(20), &[], &[]),
            ("@<esc::/a~1b/more?none>", json!("none"), &[], &[]),
            ("@<esc::/a~1b>", json!(1), &[], &[]),
            ("@<esc::m~0n>", json!(2), &[], &[]),
            ("@<esc::/~01>", json!(3), &[], &[]),
            // Fallbacks: split at the first '?'.
            ("@<sample.out::/x?a?b>", json!("a?b"), &[], &[]),
            ("@<sample.out::/x?>!", json!("null!"), &[], &[]),
            (
                "@<unknown::/x?d>",
                json!("@<unknown::/x?d>"),
                &["@<unknown::/x?d>"],
                &[],
            ),
            // Unicode in names, pointers, values and the surrounding text.
            ("@<ünï.out::clé>", json!("välue ✓"), &[], &[]),
            ("→ @<ünï.out::/emoji> ←", json!("→ 🎉 ←"), &[], &[]),
            ("日本@<ünï.out::/nö?défaut>語", json!("日本défaut語"), &[], &[]),
            ("@<ünï.out::/nö>", json!("@<ünï.out::/nö>"), &[], &["@<ünï.out::/nö>"]),
            // Not tokens at all.
            ("plain", json!("plain"), &[], &[]),
            ("@<>", json!("@<>"), &[], &[]),
            ("@<a", json!("@<a"), &[], &[]),
            ("a @ < b >", json!("a @ < b >"), &[], &[]),
        ];
        let ctx = ctx();
        for (input, expected, missing, invalid) in cases {
            let (out, refs) = resolve(&json!(input), &ctx);
            assert_eq!(out, expected, "value of {input:?}");
            assert_eq!(refs.missing, set(missing), "missing of {input:?}");
            assert_eq!(refs.invalid, set(invalid), "invalid of {input:?}");
            let mut in_place = json!(input);
            assert_eq!(resolve_in_place(&mut in_place, &ctx), refs, "refs of {input:?}");
            assert_eq!(in_place, expected, "in place {input:?}");
            assert_eq!(unresolved(&json!(input), &ctx), refs);
        }
    }

    #[test]
    fn tokenizer_follows_the_regex() {
        // (input, [(name, pointer, fallback)])
        type Expected<'a> = Vec<(&'a str, Option<&'a str>, Fallback<'a>)>;
        let cases: Vec<(&str, Expected<'_>)> = vec![
            ("@<a>", vec![("a", None, Fallback::None)]),
            ("@<a::b>", vec![("a", Some("b"), Fallback::None)]),
            ("@<a::b?>", vec![("a", Some("b"), Fallback::Null)]),
            ("@<a::b?c?d>", vec![("a", Some("b"), Fallback::Default("c?d"))]),
            ("@<a::b::c>", vec![("a", Some("b::c"), Fallback::None)]),
            // The path needs one character, so "::" right before '>' is NAME text.
            ("@<a::>", vec![("a::", None, Fallback::None)]),
            ("@<a::>>", vec![("a", Some(">"), Fallback::None)]),
            ("@<>>", vec![(">", None, Fallback::None)]),
            ("@<@<b>", vec![("@<b", None, Fallback::None)]),
            ("@<a>b>", vec![("a", None, Fallback::None)]),
            (
                "x@<a>y@<b::/c>z",
                vec![("a", None, Fallback::None), ("b", Some("/c"), Fallback::None)],
            ),
            // Java's '.' stops at line terminators.
            ("@<a\nb>@<c>", vec![("c", None, Fallback::None)]),
            ("@<a::b\n>", vec![]),
            ("@<a\u{2028}b> @<c::d\u{85}e> @<f>", vec![("f", None, Fallback::None)]),
            ("@<é::ü?ß>", vec![("é", Some("ü"), Fallback::Default("ß"))]),
            ("@<🎉>", vec![("🎉", None, Fallback::None)]),
            ("@<", vec![]),
            ("@<<", vec![]),
        ];
        for (input, expected) in cases {
            let got: Vec<_> = tokens(input).map(|t| (t.name, t.pointer, t.fallback)).collect();
            assert_eq!(got, expected, "tokens of {input:?}");
            for t in tokens(input) {
                assert_eq!(&input[t.start..t.start + t.text.len()], t.text);
            }
        }
        assert!(exact_token("@<a::/b?c>").is_some());
        assert!(exact_token("@<a>b>").is_none());
        assert!(exact_token(" @<a>").is_none());
    }

    #[test]
    fn pathological_inputs_stay_linear() {
        let many_opens = "@<".repeat(50_000);
        assert_eq!(tokens(&many_opens).count(), 0);
        let colons = format!("@<a{}", "::".repeat(50_000));
        assert_eq!(tokens(&colons).count(), 0);
        let many = "@<a>".repeat(50_000);
        assert_eq!(tokens(&many).count(), 50_000);
    }

    #[test]
    fn walks_values_and_elements_but_never_keys() {
        let mut doc = json!({
            "@<s>": "@<s>",
            "list": ["@<a>", ["@<b>", {"inner": "v=@<a>", "@<a>": 1}], 3, true, null],
            "obj": {"deeper": {"deepest": "@<sample.out::subItem/item>"}},
            "untouched": "no token"
        });
        let refs = resolve_in_place(&mut doc, &ctx());
        assert!(refs.is_empty());
        assert_eq!(
            doc,
            json!({
                "@<s>": "a value",
                "list": [85, [95, {"inner": "v=85", "@<a>": 1}], 3, true, null],
                "obj": {"deeper": {"deepest": "55"}},
                "untouched": "no token"
            })
        );
        // Key order survives `resolve`'s rebuilt copy (preserve_order).
        let src = json!({"z": "@<a>", "a": ["@<b>"], "m": {}});
        let (out, _) = resolve(&src, &ctx());
        assert_eq!(out.as_object().unwrap().keys().collect::<Vec<_>>(), ["z", "a", "m"]);
        assert_eq!(out, json!({"z": 85, "a": [95], "m": {}}));
    }

    #[test]
    fn collects_missing_and_invalid_across_the_tree() {
        let doc = json!({
            "a": "@<op1.out::/x>",
            "b": ["@<op2.out>", "pre @<op1.out::/x> post"],
            "c": "@<sample.out::/nothing>",
            "d": "@<sample.out::subItem> in text"
        });
        let (out, refs) = resolve(&doc, &ctx());
        assert_eq!(out, doc);
        assert_eq!(refs.missing, set(&["@<op1.out::/x>", "@<op2.out>"]));
        assert_eq!(
            refs.invalid,
            set(&["@<sample.out::/nothing>", "@<sample.out::subItem>"])
        );
    }

    #[test]
    fn other_context_types() {
        let mut b = BTreeMap::new();
        b.insert("k".to_string(), json!({"v": [1, 2]}));
        let mut m = Map::new();
        m.insert("k".to_string(), json!({"v": [1, 2]}));
        let doc = json!(["@<k::/v/1>", "@<k::v>"]);
        assert_eq!(resolve(&doc, &b).0, json!([2, [1, 2]]));
        assert_eq!(resolve(&doc, &m).0, json!([2, [1, 2]]));
        assert_eq!(resolve(&doc, &&m).0, json!([2, [1, 2]]));
    }

    /// Builds `[[[…["@<a>"]…]]]` without recursion, and takes it apart the same
    /// way: serde_json's own drop, clone and comparison would recurse.
    fn deep_array(depth: usize) -> Value {
        let mut v = json!("@<a>");
        for _ in 0..depth {
            v = Value::Array(vec![v, json!("x@<b>")]);
        }
        v
    }

    fn check_and_dismantle(mut v: Value, depth: usize) {
        for _ in 0..depth {
            let Value::Array(mut items) = v else {
                panic!("expected array")
            };
            assert_eq!(items.len(), 2);
            assert_eq!(items[1], json!("x95"));
            v = items.swap_remove(0);
        }
        assert_eq!(v, json!(85));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        const DEPTH: usize = 10_000;
        let ctx = ctx();
        let mut doc = deep_array(DEPTH);
        assert!(resolve_in_place(&mut doc, &ctx).is_empty());
        check_and_dismantle(doc, DEPTH);

        let src = deep_array(DEPTH);
        let (out, refs) = resolve(&src, &ctx);
        assert!(refs.is_empty());
        check_and_dismantle(out, DEPTH);
        check_and_dismantle(
            {
                let mut v = src;
                resolve_in_place(&mut v, &ctx);
                v
            },
            DEPTH,
        );
    }

    fn op(payload: Value, params: Value) -> Operation {
        Operation {
            name: Some("me".into()),
            payload: Some(payload),
            params: serde_json::from_value(params).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn operation_dependencies_from_tokens_and_depends_on() {
        let o = op(
            json!({
                "a": "@<first.out::/x>",
                "b": ["pre @<second.out> @<pop.agendaId> @<pop.payload::/t>", {"c": "@<third>"}],
                "d": "@<name.out.out::/y?z>",
                "@<keyonly.out>": 1
            }),
            json!({"dependsOn": " extra1 , ,extra2,first "}),
        );
        assert_eq!(
            operation_dependencies(&o),
            set(&["extra1", "extra2", "first", "name.out", "second", "third"])
        );

        let o = op(json!("@<x.out>"), json!({"dependsOn": ["a, b", " c ", 7, ""]}));
        assert_eq!(operation_dependencies(&o), set(&["a", "b", "c", "x"]));

        let none = Operation {
            name: Some("n".into()),
            ..Default::default()
        };
        assert!(operation_dependencies(&none).is_empty());
    }
}
