//! The loader's error: which file, which key path, what is wrong.
//!
//! Every loader failure is reported as `<file>: <key path>: <message>` so a user can go
//! straight to the line that needs fixing; the CLI prefixes it with `hoist: `.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The compose file (or `.env` file) at fault, as the user named it; may be empty.
    pub file: String,
    /// Dotted key path (`services.web.deploy.replicas`); may be empty.
    pub path: String,
    pub message: String,
}

impl LoadError {
    pub fn new(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LoadError {
            file: file.into(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}: ", self.file)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}
