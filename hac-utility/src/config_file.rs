//! Configuration files for a command's flags (`hac serve --config FILE`): a TOML table whose
//! keys are the command's long flags with `_` for `-` (`client_idle_timeout = 60`).
//!
//! The command's clap definition is the only definition of the keys: each key of the file
//! becomes its flag (`vfs = 2` is `--vfs 2`; `model = true` is `--model`; an array is one
//! occurrence per element), is checked by that flag's own value parser, and the whole is parsed
//! again by clap together with the flags given on the command line, so ranges, choices,
//! conflicts and requirements hold for the file as for the command line. A flag given on the
//! command line (or through its environment variable) beats the file. A flag added to the
//! command later is a key of the file with no further code.
//!
//! Errors are one line and name the file, line and column, and the key: an unknown key, a
//! value of the wrong TOML type, a value the flag's parser refuses; a TOML syntax error names
//! the place too.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use toml::Spanned;

/// Why a configuration file could not be applied. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The reason.
        message: String,
    },
    /// A place in the file is wrong: syntax, unknown key, wrong type, refused value.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The file's values and the command line together are refused (a conflict, a missing
    /// requirement).
    #[error("{path}: {message}")]
    Combined {
        /// The file.
        path: String,
        /// clap's reason, on one line.
        message: String,
    },
}

/// The TOML key of a flag id (clap ids are the field names: `client_idle_timeout`).
fn is_key_of(arg: &clap::Arg, key: &str) -> bool {
    arg.get_long().is_some() && arg.get_id().as_str() == key
}

/// Line and column (1-based) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A clap error on one line: its text up to the usage, without the `error: ` prefix.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = parts.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}

/// The keys the file may hold: every long flag of `cmd` except `help`, `version` and the
/// `skip` ones (the `config` flag itself).
pub fn keys(cmd: &Command, skip: &[&str]) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| a.get_id().as_str().to_string())
        .filter(|id| id != "help" && id != "version" && !skip.contains(&id.as_str()))
        .collect()
}

/// Reads `path` and returns the command-line arguments its keys stand for, skipping the keys
/// `explicit` says were given otherwise. `cmd` is the command whose flags the keys are.
fn file_args(
    cmd: &Command,
    path: &Path,
    text: &str,
    skip: &[&str],
    explicit: &dyn Fn(&str) -> bool,
) -> Result<Vec<OsString>, ConfigError> {
    let shown = path.display().to_string();
    let at = |span: std::ops::Range<usize>, message: String| {
        let (line, column) = line_column(text, span.start);
        ConfigError::At {
            path: shown.clone(),
            line,
            column,
            message,
        }
    };
    type Table = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;
    let table: Table = toml::from_str(text).map_err(|e| {
        let message = e.message().replace('\n', " ");
        match e.span() {
            Some(span) => at(span, message),
            None => ConfigError::Read {
                path: shown.clone(),
                message,
            },
        }
    })?;
    let known = keys(cmd, skip);
    // In file order, so the first error is the first in the file.
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut args = Vec::new();
    for (key, value) in entries {
        let name = key.get_ref().as_str();
        let arg = cmd
            .get_arguments()
            .find(|a| is_key_of(a, name) && known.iter().any(|k| k == name));
        let Some(arg) = arg else {
            return Err(at(
                key.span(),
                format!("unknown key `{name}` (known: {})", known.join(", ")),
            ));
        };
        let Some(long) = arg.get_long() else {
            continue;
        };
        let flag = format!("--{long}");
        let wrong_type = |what: &str| {
            at(
                value.span(),
                format!(
                    "key `{name}`: expected {what}, found {}",
                    value.get_ref().type_str()
                ),
            )
        };
        // The values as the command line would carry them.
        let takes_values = arg.get_action().takes_values();
        let values: Vec<String> = match value.get_ref() {
            toml::Value::Boolean(b) if !takes_values => {
                if !matches!(arg.get_action(), ArgAction::SetTrue) {
                    return Err(wrong_type("a flag that takes no value"));
                }
                if *b && !explicit(name) {
                    args.push(OsString::from(&flag));
                }
                continue;
            }
            _ if !takes_values => return Err(wrong_type("true or false")),
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Integer(i) => vec![i.to_string()],
            toml::Value::Float(f) => vec![f.to_string()],
            toml::Value::Boolean(b) => vec![b.to_string()],
            toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => out.push(s.clone()),
                        toml::Value::Integer(i) => out.push(i.to_string()),
                        toml::Value::Float(f) => out.push(f.to_string()),
                        _ => return Err(wrong_type("an array of numbers or strings")),
                    }
                }
                out
            }
            toml::Value::Array(_) => return Err(wrong_type("one value, not an array")),
            _ => return Err(wrong_type("a number or a string")),
        };
        // The values through the flag's own parser (clap checks them before relations between
        // flags), so a refusal names the place and the key.
        let mut alone = vec![OsString::from(cmd.get_name())];
        alone.extend(values.iter().map(|v| OsString::from(format!("{flag}={v}"))));
        if let Err(e) = cmd.clone().try_get_matches_from(alone) {
            use clap::error::ErrorKind;
            if !matches!(
                e.kind(),
                ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict
            ) {
                return Err(at(value.span(), format!("key `{name}`: {}", one_line(&e))));
            }
        }
        if explicit(name) {
            continue;
        }
        for v in values {
            args.push(OsString::from(format!("{flag}={v}")));
        }
    }
    Ok(args)
}

/// The arguments `matches` was given on the command line, rebuilt as `--flag=value` words
/// (values from the environment or defaults are left to clap to find again).
fn command_line_args(cmd: &Command, matches: &ArgMatches) -> Vec<OsString> {
    let mut args = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let Some(long) = arg.get_long() else {
            continue;
        };
        if !arg.get_action().takes_values() {
            args.push(OsString::from(format!("--{long}")));
            continue;
        }
        if let Ok(Some(raw)) = matches.try_get_raw_occurrences(id) {
            for occurrence in raw {
                let mut word = OsString::from(format!("--{long}="));
                let values: Vec<&std::ffi::OsStr> = occurrence.collect();
                let delimiter = arg.get_value_delimiter().unwrap_or(',').to_string();
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        word.push(&delimiter);
                    }
                    word.push(v);
                }
                args.push(word);
            }
        }
    }
    args
}

/// `A` as `matches` gave it, with the keys of the TOML file `path` filling in every flag the
/// command line (or the environment) did not give. `cmd` is `A`'s command (the subcommand as
/// clap built it); `skip` are flags the file may not set (`config`).
pub fn merge<A: clap::FromArgMatches>(
    cmd: &Command,
    matches: &ArgMatches,
    path: &Path,
    skip: &[&str],
) -> Result<A, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    merge_text(cmd, matches, path, &text, skip)
}

/// [`merge`] with the file's text given.
pub fn merge_text<A: clap::FromArgMatches>(
    cmd: &Command,
    matches: &ArgMatches,
    path: &Path,
    text: &str,
    skip: &[&str],
) -> Result<A, ConfigError> {
    let explicit = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut argv = vec![OsString::from(cmd.get_name())];
    argv.extend(file_args(cmd, path, text, skip, &explicit)?);
    argv.extend(command_line_args(cmd, matches));
    let combined = |e: clap::Error| ConfigError::Combined {
        path: path.display().to_string(),
        message: one_line(&e),
    };
    let merged = cmd.clone().try_get_matches_from(argv).map_err(combined)?;
    A::from_arg_matches(&merged).map_err(combined)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use clap::{Args, FromArgMatches};

    #[derive(Args, Debug, PartialEq)]
    struct Demo {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=7))]
        vfs: u64,
        #[arg(long)]
        model: bool,
        #[arg(long, value_delimiter = ',', default_value = "0")]
        list: Vec<usize>,
        #[arg(long, default_value = "igb", value_parser = ["igb", "mlx5"])]
        family: String,
        #[arg(long, requires = "family_note")]
        needs: Option<String>,
        #[arg(long)]
        family_note: Option<String>,
    }

    fn cmd() -> Command {
        Demo::augment_args(Command::new("demo"))
    }

    fn load(cli: &[&str], file: &str) -> Result<Demo, ConfigError> {
        let c = cmd();
        let mut argv = vec!["demo"];
        argv.extend(cli);
        let m = c.clone().try_get_matches_from(argv).unwrap();
        merge_text(&c, &m, Path::new("demo.toml"), file, &["config"])
    }

    #[test]
    fn each_key_is_its_flag() {
        let got = load(
            &[],
            "vfs = 2\nmodel = true\nlist = [1, 3]\nfamily = \"mlx5\"\nneeds = \"a\"\nfamily_note = \"b\"\n",
        )
        .unwrap();
        let c = cmd();
        let flags = c
            .clone()
            .try_get_matches_from([
                "demo",
                "--vfs",
                "2",
                "--model",
                "--list",
                "1,3",
                "--family",
                "mlx5",
                "--needs",
                "a",
                "--family-note",
                "b",
            ])
            .unwrap();
        assert_eq!(got, Demo::from_arg_matches(&flags).unwrap());
        // A list may also be the flag's own comma-separated string.
        assert_eq!(load(&[], "list = \"4,5\"").unwrap().list, vec![4, 5]);
        // An empty file changes nothing.
        assert_eq!(load(&[], "").unwrap().vfs, 4);
    }

    #[test]
    fn the_command_line_beats_the_file() {
        let d = load(
            &["--vfs", "3", "--list", "7"],
            "vfs = 2\nlist = [1]\nmodel = true",
        )
        .unwrap();
        assert_eq!((d.vfs, d.list, d.model), (3, vec![7], true));
    }

    #[test]
    fn an_unknown_key_names_its_place() {
        let e = load(&[], "vfs = 2\n\n  wire_tapp = \"tap0\"\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("demo.toml:3:3: unknown key `wire_tapp`"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        // The config flag itself is not a key.
        let e = load(&[], "config = \"x.toml\"").unwrap_err().to_string();
        assert!(e.starts_with("demo.toml:1:1: unknown key `config`"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_key_and_place() {
        for (file, place, what) in [
            ("vfs = 9", "demo.toml:1:7:", "key `vfs`: "),
            ("vfs = \"two\"", "demo.toml:1:7:", "key `vfs`: "),
            ("\nfamily = \"e1000\"", "demo.toml:2:10:", "key `family`: "),
            (
                "model = 1",
                "demo.toml:1:9:",
                "key `model`: expected true or false",
            ),
            ("list = [1, \"x\"]", "demo.toml:1:8:", "key `list`: "),
            (
                "vfs = [1, 2]",
                "demo.toml:1:7:",
                "key `vfs`: expected one value",
            ),
            (
                "family = { a = 1 }",
                "demo.toml:1:10:",
                "key `family`: expected",
            ),
        ] {
            let e = load(&[], file).unwrap_err().to_string();
            assert!(e.starts_with(place) && e.contains(what), "{file}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // A TOML syntax error has a place too.
        let e = load(&[], "vfs = = 2").unwrap_err().to_string();
        assert!(e.starts_with("demo.toml:1:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn conflicts_and_requirements_hold_for_the_file() {
        let e = load(&[], "needs = \"a\"").unwrap_err().to_string();
        assert!(e.starts_with("demo.toml: "), "{e}");
        assert!(e.contains("--family-note"), "{e}");
        // Satisfied from the command line.
        assert!(load(&["--family-note", "b"], "needs = \"a\"").is_ok());
    }

    #[test]
    fn a_missing_file_is_one_line() {
        let c = cmd();
        let m = c.clone().try_get_matches_from(["demo"]).unwrap();
        let e = merge::<Demo>(&c, &m, Path::new("/nonexistent/hac.toml"), &["config"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/hac.toml: "), "{e}");
    }
}
