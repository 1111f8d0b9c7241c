//! Glob patterns with Redis `MATCH` semantics, for [`CacheStore::clear_matching`] on stores that
//! are not Redis.
//!
//! [`CacheStore::clear_matching`]: crate::CacheStore::clear_matching

/// Whether `key` matches the glob `pattern` exactly as Redis `SCAN … MATCH` (and `KEYS`) decides:
/// on bytes, case-sensitively.
///
/// - `*` matches any run of bytes, the empty one included; `?` matches one byte (not one
///   character: a multi-byte UTF-8 character needs as many `?`);
/// - `[abc]` matches one of the bytes listed, `[a-z]` one in the range (either order), `[^…]` one not
///   listed; `\` inside brackets takes the next byte literally; an unclosed `[` runs to the end;
/// - `\x` matches `x` literally; every other byte matches itself.
///
/// ```
/// use cache_core::glob_matches;
///
/// assert!(glob_matches("list:*", "list:42"));
/// assert!(glob_matches("user:[0-9]?", "user:42"));
/// assert!(!glob_matches("user:[^0-9]*", "user:42"));
/// assert!(glob_matches(r"a\*b", "a*b") && !glob_matches(r"a\*b", "axb"));
/// ```
pub fn glob_matches(pattern: &str, key: &str) -> bool {
    let mut skip_longer = false;
    matches(pattern.as_bytes(), key.as_bytes(), &mut skip_longer, 0)
}

/// `literal` with every glob character (`* ? [ ] \`) escaped by a backslash, so that as a
/// pattern it matches only itself.
///
/// ```
/// assert_eq!(cache_core::glob_escape(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
/// ```
pub fn glob_escape(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The bytes of `pattern` before its first special character: every key it matches starts with
/// them, so a scan can be limited to that prefix.
pub(crate) fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// A port of Redis' `stringmatchlen` (util.c), with its guard against abusive patterns: beyond a
/// nesting of 1000 stars, nothing matches.
fn matches(mut pattern: &[u8], mut key: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > 1000 {
        return false;
    }
    while !pattern.is_empty() && !key.is_empty() {
        match pattern[0] {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                while !key.is_empty() {
                    if matches(&pattern[1..], key, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    key = &key[1..];
                }
                // The rest of the pattern matches nowhere in the rest of the key, so no earlier star
                // can help by matching more.
                *skip_longer = true;
                return false;
            }
            b'?' => key = &key[1..],
            b'[' => {
                pattern = &pattern[1..];
                let negate = pattern.first() == Some(&b'^');
                if negate {
                    pattern = &pattern[1..];
                }
                let mut found = false;
                loop {
                    match pattern {
                        [b'\\', escaped, ..] => {
                            pattern = &pattern[1..];
                            found |= *escaped == key[0];
                        }
                        [b']', ..] => break,
                        // Unclosed: stay on the last byte, which the step below consumes.
                        [] => break,
                        [start, b'-', end, ..] => {
                            let (low, high) = if start <= end {
                                (*start, *end)
                            } else {
                                (*end, *start)
                            };
                            pattern = &pattern[2..];
                            found |= (low..=high).contains(&key[0]);
                        }
                        [byte, ..] => found |= *byte == key[0],
                    }
                    pattern = &pattern[1..];
                }
                if found == negate {
                    return false;
                }
                key = &key[1..];
                if pattern.is_empty() {
                    // An unclosed class consumed the whole pattern.
                    return key.is_empty();
                }
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                if pattern[0] != key[0] {
                    return false;
                }
                key = &key[1..];
            }
            byte => {
                if byte != key[0] {
                    return false;
                }
                key = &key[1..];
            }
        }
        pattern = &pattern[1..];
        if key.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            break;
        }
    }
    pattern.is_empty() && key.is_empty()
}

#[cfg(test)]
mod tests {
    use super::{glob_escape, glob_matches, literal_prefix};

    #[test]
    fn matches_as_redis_does() {
        let cases = [
            ("*", "", false), // as in Redis: the loop never starts on an empty key
            ("*", "anything", true),
            ("", "", true),
            ("a*", "a", true),
            ("", "a", false),
            ("a*", "a", true),
            ("a*b", "ab", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("?", "é", false), // two bytes
            ("??", "é", true),
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[^abc]", "d", true),
            ("[^abc]", "a", false),
            ("[a-c]x", "bx", true),
            ("[c-a]x", "bx", true),
            ("[a-c]x", "dx", false),
            (r"[\]]", "]", true),
            (r"[\-]", "-", true),
            ("[abc", "b", true), // unclosed
            ("[abc", "bc", false),
            (r"a\*", "a*", true),
            (r"a\*", "ab", false),
            (r"a\?", "a?", true),
            ("a\\", "a\\", true), // a trailing backslash is itself
            ("list:*", "list:1", true),
            ("list:*", "lists", false),
            ("*:*:*", "a:b:c", true),
            ("*:*:*", "a:b", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(
                glob_matches(pattern, key),
                expected,
                "{pattern:?} on {key:?}"
            );
        }
    }

    #[test]
    fn abusive_patterns_end() {
        let pattern = "a".to_owned() + &"*a".repeat(40) + "b";
        assert!(!glob_matches(&pattern, &"a".repeat(100)));
    }

    #[test]
    fn an_escaped_literal_matches_only_itself() {
        for literal in ["a*b", "[x]", r"back\slash", "q?"] {
            assert!(glob_matches(&glob_escape(literal), literal));
            assert!(!glob_matches(&glob_escape(literal), "axb"));
        }
    }

    #[test]
    fn literal_prefix_stops_at_the_first_special_byte() {
        assert_eq!(literal_prefix("list:*"), "list:");
        assert_eq!(literal_prefix("a?b"), "a");
        assert_eq!(literal_prefix("[ab]"), "");
        assert_eq!(literal_prefix(r"a\*"), "a");
        assert_eq!(literal_prefix("plain"), "plain");
    }
}
