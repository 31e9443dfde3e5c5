//! Command-line options: `chat-bench <scenario> [--key value]... [--quick]`. Every
//! option is `--key value` except the flags below; each scenario takes the keys it
//! knows and an unknown key is an error naming it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// Options that take no value.
const FLAGS: [&str; 4] = ["quick", "help", "allow-server-closes", "by-room"];

/// Parsed command line.
pub struct Args {
    /// Scenario name (first free argument).
    pub scenario: String,
    opts: BTreeMap<String, String>,
    flags: BTreeSet<String>,
    used: RefCell<BTreeSet<String>>,
}

impl Args {
    /// Parses `argv` (without the program name).
    pub fn parse(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Args, String> {
        use lexopt::Arg::{Long, Short, Value};
        let mut p = lexopt::Parser::from_args(argv);
        let mut a = Args {
            scenario: String::new(),
            opts: BTreeMap::new(),
            flags: BTreeSet::new(),
            used: RefCell::new(BTreeSet::new()),
        };
        while let Some(arg) = p.next().map_err(|e| e.to_string())? {
            match arg {
                Long(k) if FLAGS.contains(&k) => {
                    a.flags.insert(k.to_string());
                }
                Short('h') => {
                    a.flags.insert("help".into());
                }
                Long(k) => {
                    let k = k.to_string();
                    let v = p
                        .value()
                        .map_err(|e| e.to_string())?
                        .into_string()
                        .map_err(|_| format!("--{k}: not UTF-8"))?;
                    a.opts.insert(k, v);
                }
                Value(v) if a.scenario.is_empty() => {
                    a.scenario = v.into_string().map_err(|_| "scenario: not UTF-8")?;
                }
                other => return Err(other.unexpected().to_string()),
            }
        }
        Ok(a)
    }

    /// Whether a flag is present.
    pub fn flag(&self, k: &str) -> bool {
        self.flags.contains(k)
    }

    /// A string option.
    pub fn str(&self, k: &str) -> Option<String> {
        self.used.borrow_mut().insert(k.to_string());
        self.opts.get(k).cloned()
    }

    /// A number option with its default.
    pub fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        match self.str(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{k}: `{v}` is not a valid number")),
        }
    }

    /// A number option whose default depends on `--quick`.
    pub fn sized<T: std::str::FromStr>(&self, k: &str, full: T, quick: T) -> Result<T, String> {
        let d = if self.flag("quick") { quick } else { full };
        self.num(k, d)
    }

    /// Fails on options nobody asked for.
    pub fn check_unused(&self) -> Result<(), String> {
        let used = self.used.borrow();
        match self.opts.keys().find(|k| !used.contains(*k)) {
            Some(k) => Err(format!(
                "unknown option --{k} for `{}` (see chat-bench {} --help)",
                self.scenario, self.scenario
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Args {
        Args::parse(s.split_whitespace().map(Into::into)).unwrap()
    }

    #[test]
    fn options_flags_and_defaults() {
        let a = parse("delivery --senders 120 --quick --interval-ms=80");
        assert_eq!(a.scenario, "delivery");
        assert!(a.flag("quick"));
        assert_eq!(a.num("senders", 1u64).unwrap(), 120);
        assert_eq!(a.num("interval-ms", 1u64).unwrap(), 80);
        assert_eq!(a.sized("receivers", 100u64, 20).unwrap(), 20);
        assert!(a.check_unused().is_ok());
        let b = parse("fanout --bogus 1");
        assert!(b.check_unused().unwrap_err().contains("--bogus"));
        assert!(parse("x --senders two").num("senders", 1u64).is_err());
    }
}
