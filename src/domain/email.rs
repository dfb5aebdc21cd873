//! E-mail addresses of end users: compared case-insensitively, so kept in lower case.

use std::fmt;

const MAX_CHARS: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        const HINT: &str = "must be an e-mail address such as client@example.com";
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_CHARS {
            return Err(format!("{HINT}, at most {MAX_CHARS} characters"));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(HINT.into());
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '/' && c != '?' && c != '#');
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if !local_ok || !domain_ok {
            return Err(HINT.into());
        }
        Ok(Self(text.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_are_compared_in_lower_case() {
        assert_eq!(
            Email::parse(" Client@AutoPay.io ").unwrap().as_str(),
            "client@autopay.io"
        );
        assert_eq!(
            Email::parse("a.b+c@sub.example.se").unwrap().as_str(),
            "a.b+c@sub.example.se"
        );
        assert_eq!(
            Email::parse("åsa@exempel.se").unwrap().as_str(),
            "åsa@exempel.se"
        );
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "client",
            "@example.com",
            "client@",
            "client@example",
            "a b@example.com",
            "client@exa mple.com",
            "client@.example.com",
            "client@example..com",
            "client@-example.com",
            "a/b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(email.as_str()).unwrap(), email);
            }
        }
    }
}
