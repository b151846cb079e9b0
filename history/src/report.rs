//! Printing an error for people: once, with its causes.
//!
//! Many error messages already include their cause (`"{path}: {source}"`)
//! and also expose it as their `source()`, so printing the whole chain
//! (`{:#}` of an `anyhow::Error`) shows the cause twice. [`chain`] adds a
//! cause only when the text so far does not already say it.

use std::error::Error;

/// `error: cause: cause …`, each cause once.
#[must_use]
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config file {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("starting")]
    struct Outer(#[source] Read);

    /// An error whose message already names its cause prints it once.
    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let e = Outer(Read {
            path: "/nonexistent.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        let text = chain(&e);
        assert_eq!(
            text,
            format!(
                "starting: cannot read config file /nonexistent.toml: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        );
        assert_eq!(text.matches("not found").count(), 1, "{text}");
    }
}
