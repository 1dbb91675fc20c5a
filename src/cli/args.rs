//! Pure command-line helpers shared by the queue verbs: core4's `--verb` spellings (and
//! `list --state NAME`), `k=v` run arguments typed as JSON, which of them a command leaves
//! unused, and `PROJECT.JOB` names. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

use serde_json::Value;

use crate::manifest::JobId;
use crate::queue::state::RunState;

/// core4's spellings (`coco --enqueue NAME`) and the verb each stands for.
const CORE4_VERBS: &[(&str, &str)] = &[
    ("--enqueue", "enqueue"),
    ("--detail", "detail"),
    ("--worker", "worker"),
    ("--halt", "halt"),
    ("--alive", "alive"),
    ("--kill", "kill"),
    ("--restart", "restart"),
    ("--remove", "remove"),
    ("--pause", "pause"),
    ("--resume", "resume"),
    ("--mode", "mode"),
    ("--init", "init"),
    ("--build", "build"),
    ("--release", "release"),
    ("--list", "list"),
    ("--listing", "list"),
];

/// Global options that take a value (they may come before the verb).
const GLOBAL_WITH_VALUE: &[&str] = &[
    "--config",
    "--home",
    "--state",
    "--mongo-url",
    "--mongo-database",
];

/// Rewrite core4's spellings into verbs before clap parses: the first argument that is not a
/// global option, if it is `--enqueue` (or `--enqueue=NAME`) and the like, becomes the verb
/// (`enqueue NAME`). Anything else is returned unchanged.
pub fn core4_aliases(argv: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = argv.into_iter().collect();
    let mut index = 1;
    while index < argv.len() {
        let Some(arg) = argv[index].to_str() else {
            break;
        };
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg, None),
        };
        if GLOBAL_WITH_VALUE.contains(&flag) {
            index += if value.is_some() { 1 } else { 2 };
            continue;
        }
        if let Some((_, verb)) = CORE4_VERBS.iter().find(|(spelling, _)| *spelling == flag) {
            let value = value.map(OsString::from);
            argv[index] = OsString::from(verb);
            if let Some(value) = value {
                argv.insert(index + 1, value);
            }
        }
        if argv[index] == "list" {
            list_state_filter(&mut argv, index + 1);
        }
        break;
    }
    argv
}

/// `coco list --state running`: after the `list` verb, `--state NAME` (or `--state=NAME`)
/// with a run state's name is the filter, not the global state folder: it becomes the
/// positional `NAME`.
fn list_state_filter(argv: &mut Vec<OsString>, from: usize) {
    let is_state = |text: &str| RunState::parse(&text.to_ascii_lowercase()).is_some();
    let mut index = from;
    while index < argv.len() {
        let arg = argv[index].to_str().unwrap_or_default().to_owned();
        if arg == "--state"
            && let Some(name) = argv.get(index + 1).and_then(|v| v.to_str())
            && is_state(name)
        {
            argv.remove(index);
            continue;
        }
        if let Some(name) = arg.strip_prefix("--state=")
            && is_state(name)
        {
            argv[index] = OsString::from(name);
        }
        index += 1;
    }
}

/// One `--arg KEY=VALUE` of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunArg {
    pub key: String,
    pub value: Value,
}

/// Parse `KEY=VALUE`: VALUE is taken as JSON where it parses (`3`, `true`, `[1,2]`,
/// `{"a":1}`, `null`, `"quoted"`), else as the string it is. Numbers keep the text they
/// were written with (integers of any size, `2.50`); a number JSON would spell otherwise
/// (`1e2` reads back as `1e+2`) and a value with spaces around it are kept as the string
/// given, so `{{args.KEY}}` renders exactly what was typed.
pub fn parse_arg(text: &str) -> Result<RunArg, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not KEY=VALUE"));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{text}` has no KEY before `=`"));
    }
    let value = match serde_json::from_str::<Value>(value) {
        Ok(Value::Number(number)) if number.to_string() != value => Value::String(value.to_owned()),
        Ok(parsed) if value.trim() == value => parsed,
        _ => Value::String(value.to_owned()),
    };
    Ok(RunArg {
        key: key.to_owned(),
        value,
    })
}

/// The arguments of a run: the job's defaults, with `given` on top (a later key wins; see
/// [`crate::queue::overlay_args`]).
pub fn merge_args(defaults: &BTreeMap<String, Value>, given: &[RunArg]) -> Value {
    crate::queue::overlay_args(
        defaults,
        given.iter().map(|arg| (arg.key.clone(), arg.value.clone())),
    )
}

/// Which run arguments a job's command renders (`{{args.NAME}}` in its elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsUse {
    /// No template mentions `args`: the job may read them all from `COCO_ARGS`.
    NotInCommand,
    /// Templates name exactly these arguments.
    Names(BTreeSet<String>),
    /// A template uses `args` as a whole (`{{args}}`, `{{#each args}}`, `lookup args ..`):
    /// any argument may be used.
    Whole,
}

/// How `command`'s templates use the run arguments: every `args.NAME` / `args.[NAME]`
/// inside `{{ }}`.
pub fn args_use(command: &[String]) -> ArgsUse {
    let mut names = BTreeSet::new();
    for element in command {
        let mut rest = element.as_str();
        while let Some(open) = rest.find("{{") {
            let inner = &rest[open + 2..];
            let close = inner.find("}}").unwrap_or(inner.len());
            if !arg_names_in(&inner[..close], &mut names) {
                return ArgsUse::Whole;
            }
            rest = &inner[close..];
        }
    }
    if names.is_empty() {
        ArgsUse::NotInCommand
    } else {
        ArgsUse::Names(names)
    }
}

/// Add the `args.NAME`s of one mustache's text to `names`; false when `args` stands alone.
fn arg_names_in(mustache: &str, names: &mut BTreeSet<String>) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '@';
    let mut from = 0;
    while let Some(found) = mustache[from..].find("args") {
        let start = from + found;
        let end = start + "args".len();
        from = end;
        if mustache[..start].chars().next_back().is_some_and(is_word) {
            continue;
        }
        let after = &mustache[end..];
        if after.chars().next().is_some_and(is_word) {
            continue;
        }
        let Some(path) = after.strip_prefix('.') else {
            return false;
        };
        let name = match path.strip_prefix('[') {
            Some(quoted) => quoted.split(']').next().unwrap_or_default(),
            None => path.split(|c: char| !is_word(c)).next().unwrap_or_default(),
        };
        if name.is_empty() {
            return false;
        }
        names.insert(name.to_owned());
    }
    true
}

/// The keys of `given` that `command` never renders, when it renders some by name (see
/// [`ArgsUse`]), first given first, each once; and the names it renders.
pub fn unused_args<'a>(
    command: &[String],
    given: &'a [RunArg],
) -> (Vec<&'a str>, BTreeSet<String>) {
    let ArgsUse::Names(used) = args_use(command) else {
        return (Vec::new(), BTreeSet::new());
    };
    let mut unused: Vec<&str> = Vec::new();
    for arg in given {
        if !used.contains(&arg.key) && !unused.contains(&arg.key.as_str()) {
            unused.push(&arg.key);
        }
    }
    (unused, used)
}

/// The warning for the arguments of `given` job `job_id`'s `command` never renders, if any.
pub fn unused_args_warning(job_id: &str, command: &[String], given: &[RunArg]) -> Option<String> {
    let (unused, used) = unused_args(command, given);
    if unused.is_empty() {
        return None;
    }
    let list = |names: Vec<String>| names.join(", ");
    Some(format!(
        "argument{} {} not used by the command of {job_id} (it renders {}); {} still in COCO_ARGS",
        if unused.len() == 1 { "" } else { "s" },
        list(unused.iter().map(|name| format!("`{name}`")).collect()),
        list(
            used.iter()
                .map(|name| format!("`{{{{args.{name}}}}}`"))
                .collect()
        ),
        if unused.len() == 1 {
            "it is"
        } else {
            "they are"
        }
    ))
}

/// Split `PROJECT.JOB` at its first dot; `None` unless both parts are there.
pub fn split_job(name: &str) -> Option<(&str, &str)> {
    JobId::split(name)
}

/// Names among `candidates` close to `word` (Jaro-Winkler above 0.8, or the same job name in
/// another project), best first, at most `max`.
pub fn close_names<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<String> {
    fn job_part(name: &str) -> &str {
        name.split_once('.').map_or(name, |(_, job)| job)
    }
    let wanted_job = job_part(word);
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|candidate| {
            let score = strsim::jaro_winkler(word, candidate)
                .max(strsim::jaro_winkler(wanted_job, job_part(candidate)) - 0.05);
            (score, candidate)
        })
        .filter(|(score, _)| *score > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(max)
        .map(|(_, name)| name.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_state_names_are_the_filter_after_the_verb() {
        assert_eq!(
            rewrite(&["coco", "list", "--state", "running", "--json"]),
            ["coco", "list", "running", "--json"]
        );
        assert_eq!(
            rewrite(&["coco", "--listing", "--state=Failed"]),
            ["coco", "list", "Failed"]
        );
        assert_eq!(
            rewrite(&["coco", "--state", "/s", "list", "--state", "/other"]),
            ["coco", "--state", "/s", "list", "--state", "/other"],
            "a folder stays the global option"
        );
        assert_eq!(
            rewrite(&["coco", "detail", "--state", "running"]),
            ["coco", "detail", "--state", "running"],
            "only for list"
        );
    }

    fn rewrite(args: &[&str]) -> Vec<String> {
        core4_aliases(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn core4_spellings_become_verbs() {
        assert_eq!(
            rewrite(&["coco", "--enqueue", "p.j", "--arg", "a=1"]),
            ["coco", "enqueue", "p.j", "--arg", "a=1"]
        );
        assert_eq!(
            rewrite(&["coco", "--detail", "01ABC"]),
            ["coco", "detail", "01ABC"]
        );
        assert_eq!(
            rewrite(&["coco", "--enqueue=p.j"]),
            ["coco", "enqueue", "p.j"]
        );
        assert_eq!(rewrite(&["coco", "--listing"]), ["coco", "list"]);
        assert_eq!(rewrite(&["coco", "--list"]), ["coco", "list"]);
        for (spelling, verb) in [
            ("--worker", "worker"),
            ("--halt", "halt"),
            ("--init", "init"),
            ("--build", "build"),
            ("--release", "release"),
        ] {
            assert_eq!(rewrite(&["coco", spelling]), ["coco", verb]);
        }
    }

    #[test]
    fn global_options_may_come_first() {
        assert_eq!(
            rewrite(&["coco", "--home", "/h", "--enqueue", "p.j"]),
            ["coco", "--home", "/h", "enqueue", "p.j"]
        );
        assert_eq!(
            rewrite(&["coco", "--state=/s", "--detail", "x"]),
            ["coco", "--state=/s", "detail", "x"]
        );
    }

    #[test]
    fn only_a_leading_spelling_is_rewritten() {
        let unchanged = [
            vec!["coco", "list", "--detail"],
            vec!["coco", "enqueue", "p.j", "--arg", "--enqueue"],
            vec!["coco", "--help"],
            vec!["coco"],
            vec!["coco", "--home"],
            vec!["coco", "--enqueuex", "p.j"],
        ];
        for args in unchanged {
            assert_eq!(rewrite(&args), args);
        }
    }

    #[test]
    fn arg_values_are_json_where_they_parse() {
        let value = |text: &str| parse_arg(text).unwrap().value;
        assert_eq!(value("n=3"), json!(3));
        assert_eq!(value("n=2.5"), json!(2.5));
        assert_eq!(value("flag=true"), json!(true));
        assert_eq!(value("list=[1,2]"), json!([1, 2]));
        assert_eq!(value(r#"obj={"a":1}"#), json!({"a": 1}));
        assert_eq!(value("nothing=null"), json!(null));
        assert_eq!(value(r#"quoted="3""#), json!("3"));
        assert_eq!(value("name=world"), json!("world"));
        assert_eq!(value("empty="), json!(""));
        assert_eq!(value("eq=a=b"), json!("a=b"));
        assert_eq!(value("broken=[1,"), json!("[1,"));
        let big = value("big=12345678901234567890123");
        assert!(big.is_number());
        assert_eq!(big.to_string(), "12345678901234567890123");
        assert_eq!(value("f=2.50").to_string(), "2.50");
        assert_eq!(value("e=1e2"), json!("1e2"), "JSON would spell it 1e+2");
        assert_eq!(value("e=1e+2").to_string(), "1e+2");
        assert_eq!(value("padded= 3"), json!(" 3"));
        assert_eq!(parse_arg(" k =1").unwrap().key, "k");
        assert!(parse_arg("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_arg("=1").is_err());
    }

    #[test]
    fn given_args_override_defaults() {
        let defaults = BTreeMap::from([("a".to_owned(), json!(1)), ("b".to_owned(), json!("x"))]);
        let given = [parse_arg("b=2").unwrap(), parse_arg("c=[]").unwrap()];
        assert_eq!(
            merge_args(&defaults, &given),
            json!({"a": 1, "b": 2, "c": []})
        );
        assert_eq!(merge_args(&BTreeMap::new(), &[]), json!({}));
    }

    fn command(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_arguments_a_command_renders() {
        let names = |list: &[&str]| ArgsUse::Names(list.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            args_use(&command(&[
                "echo",
                "{{args.day}}-{{ args.n }}",
                "{{args.[odd key]}}"
            ])),
            names(&["day", "n", "odd key"])
        );
        assert_eq!(
            args_use(&command(&[
                "x",
                "{{#if args.flag}}{{args.a.b}}{{/if}}",
                "{{job}}"
            ])),
            names(&["a", "flag"])
        );
        assert_eq!(
            args_use(&command(&["echo", "args.x", "{{job}} {{myargs.x}}"])),
            ArgsUse::NotInCommand
        );
        for whole in [
            "{{args}}",
            "{{#each args}}{{this}}{{/each}}",
            "{{lookup args k}}",
        ] {
            assert_eq!(
                args_use(&command(&["echo", whole])),
                ArgsUse::Whole,
                "{whole}"
            );
        }
    }

    #[test]
    fn unused_arguments_are_named_when_the_command_renders_some() {
        let given = [
            parse_arg("day=1").unwrap(),
            parse_arg("nosuch=1").unwrap(),
            parse_arg("nosuch=2").unwrap(),
        ];
        assert_eq!(
            unused_args(&command(&["echo", "{{args.day}}"]), &given).0,
            ["nosuch"]
        );
        assert!(
            unused_args(&command(&["python3", "job.py"]), &given)
                .0
                .is_empty()
        );
        assert!(
            unused_args(&command(&["echo", "{{args}}"]), &given)
                .0
                .is_empty()
        );
        assert_eq!(
            unused_args_warning("p.j", &command(&["echo", "{{args.day}}"]), &given).unwrap(),
            "argument `nosuch` not used by the command of p.j (it renders `{{args.day}}`); \
             it is still in COCO_ARGS"
        );
        assert_eq!(
            unused_args_warning("p.j", &command(&["echo", "{{args.day}}"]), &given[..1]),
            None
        );
    }

    #[test]
    fn job_names_split_at_the_first_dot() {
        assert_eq!(split_job("p.j"), Some(("p", "j")));
        assert_eq!(split_job("p.j.k"), Some(("p", "j.k")));
        assert_eq!(split_job("pj"), None);
        assert_eq!(split_job(".j"), None);
        assert_eq!(split_job("p."), None);
    }

    #[test]
    fn close_names_are_ranked() {
        let jobs = ["hello.greet", "hello.great", "other.greet", "zzz.qqq"];
        let close = close_names("hello.greeet", jobs, 3);
        assert_eq!(close[0], "hello.greet");
        assert!(close.contains(&"hello.great".to_owned()));
        assert!(!close.contains(&"zzz.qqq".to_owned()));
        assert_eq!(close_names("greet", jobs, 3).len(), 3);
        assert!(close_names("nothing-like-it", jobs, 3).is_empty());
    }
}
