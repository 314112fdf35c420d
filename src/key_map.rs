//! `key_map` (as Phase has it): the names a role's credential fields take in `--format env` and
//! `exec`, e.g. `access_key → TF_VAR_aws_key`. Validated as environment variable names when the
//! role is written; fields left out keep the standard AWS names.
//!
//! Shared data rules, outside `engine/` on purpose: the engine checks a role's map with them,
//! and the CLI (only an HTTP client) names the variables with them, from the `key_map` the
//! server's credential answer carries (only the fields a role renames).

use std::collections::BTreeMap;

/// The credential fields a key_map may rename, with their standard AWS variable names.
pub const DEFAULT_NAMES: &[(&str, &str)] = &[
    ("access_key", "AWS_ACCESS_KEY_ID"),
    ("secret_key", "AWS_SECRET_ACCESS_KEY"),
    ("security_token", "AWS_SESSION_TOKEN"),
    ("region", "AWS_REGION"),
    ("expiration", "AWS_CREDENTIAL_EXPIRATION"),
];

/// Checks a role's key_map: known fields only, each name a portable environment variable name
/// (`[A-Za-z_][A-Za-z0-9_]*`), no two fields under one name.
pub fn check(map: &BTreeMap<String, String>) -> Result<(), String> {
    let fields: Vec<&str> = DEFAULT_NAMES.iter().map(|(f, _)| *f).collect();
    for (field, name) in map {
        if !fields.contains(&field.as_str()) {
            return Err(format!(
                "key_map field {field:?} is not a credential field; use {}",
                fields.join(", ")
            ));
        }
        let valid = name.len() <= 256
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "key_map name {name:?} for {field} is not an environment variable name (letters, digits and _, not starting with a digit, e.g. AWS_ACCESS_KEY_ID)"
            ));
        }
    }
    let resolved = resolve(map);
    for (i, (field, name)) in resolved.iter().enumerate() {
        if let Some((other, _)) = resolved[i + 1..].iter().find(|(_, n)| n == name) {
            return Err(format!(
                "key_map gives {field} and {other} the same name {name:?}; each field needs its own"
            ));
        }
    }
    Ok(())
}

/// Every field with its name: the role's where it has one, the standard AWS name otherwise.
pub fn resolve(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    DEFAULT_NAMES
        .iter()
        .map(|(field, default)| {
            let name = map.get(*field).map_or(*default, String::as_str);
            ((*field).to_owned(), name.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_are_environment_variable_names() {
        assert!(check(&map(&[("access_key", "TF_VAR_key"), ("region", "_R1")])).is_ok());
        let e = check(&map(&[("access_key", "1KEY")])).unwrap_err();
        assert!(e.contains("not an environment variable name"), "{e}");
        assert!(check(&map(&[("access_key", "MY-KEY")])).is_err());
        assert!(check(&map(&[("access_key", "")])).is_err());
        let e = check(&map(&[("password", "X")])).unwrap_err();
        assert!(e.contains("use access_key, secret_key"), "{e}");
    }

    #[test]
    fn two_fields_cannot_share_a_name() {
        let e = check(&map(&[("access_key", "AWS_SECRET_ACCESS_KEY")])).unwrap_err();
        assert!(e.contains("access_key and secret_key"), "{e}");
    }

    #[test]
    fn unmapped_fields_keep_the_aws_names() {
        let r = resolve(&map(&[("access_key", "KEY")]));
        assert_eq!(r[0], ("access_key".to_owned(), "KEY".to_owned()));
        assert_eq!(
            r[1],
            ("secret_key".to_owned(), "AWS_SECRET_ACCESS_KEY".to_owned())
        );
    }
}
