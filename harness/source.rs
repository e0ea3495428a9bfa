//! Input files with their text kept, so that any error can point at a line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file read for parsing, kept whole so spans can be turned into line:column.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (shown in errors).
    pub path: PathBuf,
    /// The whole text of the file.
    pub text: String,
}

impl SourceFile {
    /// Reads a file, naming it in the error when it cannot be read.
    pub fn read(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| InputError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("failed to read the file: {e}"),
            excerpt: None,
            help: None,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// A file made from a string (tests, generated inputs).
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error located at a span of this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> InputError {
        let (line, column) = self.line_col(span.start);
        let line_text = self.text.lines().nth(line - 1).unwrap_or("").to_string();
        let width = self.text[floor_char_boundary(&self.text, span.start)
            ..floor_char_boundary(&self.text, span.end.max(span.start))]
            .lines()
            .next()
            .map(|s| s.chars().count())
            .unwrap_or(0)
            .max(1);
        InputError {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
            excerpt: Some(Excerpt { line_text, width }),
            help: None,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The source line an error points into, and how many characters it underlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// The whole line of the file.
    pub line_text: String,
    /// Characters underlined from the error's column.
    pub width: usize,
}

/// Bad input: names the file, line and column, says what is wrong and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based column; 0 when the error is about the whole file.
    pub column: usize,
    /// What is wrong, as a lowercase fragment.
    pub message: String,
    /// The line of the file the error points into.
    pub excerpt: Option<Excerpt>,
    /// What would be accepted instead.
    pub help: Option<String>,
}

impl InputError {
    /// An error about a whole file (no line or column to point at).
    pub fn about_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
            excerpt: None,
            help: None,
        }
    }

    /// Adds a hint saying what would be accepted.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column` (or just the file for whole-file errors).
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)?;
        if let Some(excerpt) = &self.excerpt {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            write!(f, "\n{pad} |\n{number} | {}", excerpt.line_text)?;
            write!(
                f,
                "\n{pad} | {}{}",
                " ".repeat(self.column.saturating_sub(1)),
                "^".repeat(excerpt.width)
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n = help: {help}")?;
        }
        Ok(())
    }
}

/// Several input errors found in one pass (lint reports them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl From<InputError> for InputErrors {
    fn from(e: InputError) -> Self {
        Self(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let f = SourceFile::from_text("x.toml", "a = 1\nbé = \"q\"\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        let q = f.text.find("\"q\"").unwrap();
        assert_eq!(f.line_col(q), (2, 6));
    }
}
