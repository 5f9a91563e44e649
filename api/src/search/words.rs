//! The full-text tokenizer: exactly tantivy's `default` (words are runs of
//! alphanumeric characters, lowercased, and words of 40 bytes or more left
//! out), read in one pass when the text is ASCII, as log lines nearly always
//! are. The default's three chained streams cost ~15% of the indexing
//! threads' instructions; one pass costs about a third less.

use tantivy::tokenizer::{
    BoxTokenStream, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// Words of this many bytes or more are not indexed (tantivy's default).
const LONGEST: usize = 40;

/// ASCII letters and digits, by byte (a table lookup beats the range tests).
const ALPHANUMERIC: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    table
};

#[derive(Clone)]
pub struct Words {
    token: Token,
    /// Text that is not ASCII goes through tantivy's own chain.
    unicode: TextAnalyzer,
}

impl Default for Words {
    fn default() -> Self {
        let unicode = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(LONGEST))
            .filter(LowerCaser)
            .build();
        Self { token: Token::default(), unicode }
    }
}

pub enum WordStream<'a> {
    Ascii { text: &'a str, at: usize, token: &'a mut Token },
    Unicode(BoxTokenStream<'a>),
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        if text.is_ascii() {
            self.token.reset();
            WordStream::Ascii { text, at: 0, token: &mut self.token }
        } else {
            WordStream::Unicode(self.unicode.token_stream(text))
        }
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        let (text, at, token) = match self {
            WordStream::Ascii { text, at, token } => (*text, at, token),
            WordStream::Unicode(s) => return s.advance(),
        };
        let bytes = text.as_bytes();
        let in_word = |i: usize| bytes.get(i).is_some_and(|&b| ALPHANUMERIC[usize::from(b)]);
        loop {
            let mut start = *at;
            while start < bytes.len() && !in_word(start) {
                start += 1;
            }
            if start == bytes.len() {
                *at = start;
                return false;
            }
            let mut end = start + 1;
            while in_word(end) {
                end += 1;
            }
            *at = end;
            // A word left out still takes its position, as in the default chain.
            token.position = token.position.wrapping_add(1);
            if end - start < LONGEST {
                token.offset_from = start;
                token.offset_to = end;
                token.text.clear();
                token.text.push_str(&text[start..end]);
                token.text.make_ascii_lowercase();
                return true;
            }
        }
    }

    fn token(&self) -> &Token {
        match self {
            WordStream::Ascii { token, .. } => token,
            WordStream::Unicode(s) => s.token(),
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        match self {
            WordStream::Ascii { token, .. } => token,
            WordStream::Unicode(s) => s.token_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mut analyzer: TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    fn default_chain() -> TextAnalyzer {
        tantivy::tokenizer::TokenizerManager::default().get("default").expect("tantivy's default tokenizer")
    }

    #[test]
    fn words_are_the_default_tokenizers_words() {
        let long = "x".repeat(LONGEST);
        let texts = [
            String::new(),
            " ,;".into(),
            "date=2026-11-26 devname=FGT-cell-3 srcip=10.10.3.45 action=accept".into(),
            "CEF:0|Claroty|CTD|4.6|56|Unauthorized PLC program download|9|".into(),
            format!("short {long} kept {long}x end"),
            format!("{}y tail", "x".repeat(LONGEST - 1)),
            "{\"badge\":\"4711\",\"door\":\"CR-DOOR-1\",\"result\":\"Denied\"}".into(),
            "Zugang VERWEIGERT für Müller an Tür 3 — ÉCOLE ΣΊΣΥΦΟΣ".into(),
            "tab\tnew\nline\r\u{7f}end\u{0}".into(),
        ];
        for text in &texts {
            assert_eq!(tokens(Words::default().into(), text), tokens(default_chain(), text), "{text:?}");
        }
    }

    #[test]
    fn every_ascii_byte_splits_or_joins_as_the_default_does() {
        // Each byte between two letters: all 128, and long runs around them.
        for b in 0u8..128 {
            let text = format!("Ab{}cD {}", char::from(b), "9".repeat(usize::from(b) % 45));
            assert_eq!(tokens(Words::default().into(), &text), tokens(default_chain(), &text), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_the_default_tokenizers_words(
            text in "([a-zA-Z0-9]{0,45}|[ -~]{0,6}|[\\PC]{0,3}|[\t\n\r\u{0}\u{7f}])*"
        ) {
            proptest::prop_assert_eq!(tokens(Words::default().into(), &text), tokens(default_chain(), &text));
        }
    }
}
