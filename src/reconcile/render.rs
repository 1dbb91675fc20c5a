//! Render a [`Plan`] as text, Terraform/Nomad style. Pure: returns strings.

use super::diff::{Change, FieldChange, Kind, Plan};

/// The plan as lines: per project `+`/`~`/`-` entries with changed fields and next fires.
pub fn render(plan: &Plan) -> String {
    if !plan.has_changes() {
        return "No changes: the store matches the manifests.\n".to_owned();
    }
    let mut out = String::new();
    for project in &plan.projects {
        let header = match &project.change {
            Change::Create => format!("+ project {}", project.name),
            Change::Deactivate => format!(
                "- project {} (removed: its jobs and apps become inactive, history kept)",
                project.name
            ),
            Change::Update(_) => format!("~ project {}", project.name),
            Change::Unchanged => format!("  project {}", project.name),
        };
        out.push_str(&header);
        if !project.source.as_os_str().is_empty() {
            out.push_str(&format!("  ({})", project.source.display()));
        }
        out.push('\n');
        if let Change::Update(fields) = &project.change {
            for field in fields {
                out.push_str(&format!("      {}\n", field_text(field)));
            }
        }
        for item in project.items.iter().filter(|i| i.change.is_change()) {
            let kind = match item.kind {
                Kind::Job => "job",
                Kind::App => "app",
            };
            let note = match item.change {
                Change::Deactivate if item.kind == Kind::Job => " (inactive; run history kept)",
                Change::Deactivate => " (stopped)",
                _ => "",
            };
            out.push_str(&format!(
                "    {} {kind} {}{note}\n",
                item.change.sign(),
                item.name
            ));
            if let Change::Update(fields) = &item.change {
                for field in fields {
                    out.push_str(&format!("        {}\n", field_text(field)));
                }
            }
            if !item.next_fires.is_empty() {
                let fires: Vec<String> = item
                    .next_fires
                    .iter()
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
                    .collect();
                out.push_str(&format!("        next: {}\n", fires.join(", ")));
            }
        }
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// `3 to create, 1 to update, 0 to deactivate.`
pub fn summary(plan: &Plan) -> String {
    let (create, update, deactivate) = plan.counts();
    format!("{create} to create, {update} to update, {deactivate} to deactivate.")
}

/// `schedule: "30 2 * * *" → "0 4 * * *"`: one changed field as `coco plan` shows it.
fn field_text(field: &FieldChange) -> String {
    format!("{}: {} → {}", field.field, field.old, field.new)
}

/// The longest value a log line shows of a changed field; the rest is cut (`…`).
const LOGGED_VALUE_CHARS: usize = 200;

/// A changed field as the daemon's log keeps it: like `coco plan`, but environment values
/// are not shown (they may hold tokens, and the log is kept in the store), only that they
/// changed, and long values are cut.
fn logged_field_text(field: &FieldChange) -> String {
    if field.field.starts_with("env.") || field.field == "env" {
        return format!("{} changed", field.field);
    }
    let cut = |value: &str| match value.char_indices().nth(LOGGED_VALUE_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    };
    format!("{}: {} → {}", field.field, cut(&field.old), cut(&field.new))
}

/// For the daemon's log: one line per updated project, job or app, with its changed fields
/// as `coco plan` shows them (environment values left out), and the project it is about —
/// `~ job hello.greet: schedule: "* * * * *" → "*/7 * * * *"`, `~ app shop.web restarts:
/// env.PORT changed`. Created and deactivated things have no fields to show (the `applied:`
/// line names them).
pub fn updates(plan: &Plan) -> Vec<(&str, String)> {
    let fields = |fields: &[FieldChange]| {
        fields
            .iter()
            .map(logged_field_text)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut lines = Vec::new();
    for project in &plan.projects {
        let name = project.name.as_str();
        if let Change::Update(changed) = &project.change {
            lines.push((name, format!("~ project {name}: {}", fields(changed))));
        }
        for item in &project.items {
            let Change::Update(changed) = &item.change else {
                continue;
            };
            let what = match item.kind {
                Kind::Job => "job",
                Kind::App => "app",
            };
            let restarts = if item.kind == Kind::App {
                " restarts"
            } else {
                ""
            };
            lines.push((
                name,
                format!(
                    "~ {what} {name}.{}{restarts}: {}",
                    item.name,
                    fields(changed)
                ),
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{ItemPlan, ProjectPlan};

    fn item(kind: Kind, name: &str, change: Change) -> ItemPlan {
        ItemPlan {
            kind,
            name: name.to_owned(),
            change,
            definition: None,
            next_fires: Vec::new(),
            reschedule: false,
        }
    }

    fn field(field: &str, old: &str, new: &str) -> FieldChange {
        FieldChange {
            field: field.to_owned(),
            old: old.to_owned(),
            new: new.to_owned(),
        }
    }

    #[test]
    fn updates_show_the_changed_fields_one_line_per_item() {
        let plan = Plan {
            projects: vec![ProjectPlan {
                name: "shop".to_owned(),
                change: Change::Unchanged,
                items: vec![
                    item(
                        Kind::Job,
                        "export",
                        Change::Update(vec![
                            field("schedule", "\"* * * * *\"", "\"*/7 * * * *\""),
                            field("attempts", "1", "3"),
                        ]),
                    ),
                    item(
                        Kind::App,
                        "web",
                        Change::Update(vec![field("env.PORT", "\"8080\"", "\"8081\"")]),
                    ),
                    item(
                        Kind::Job,
                        "long",
                        Change::Update(vec![field("command", &"x".repeat(300), "[]")]),
                    ),
                    item(Kind::Job, "new", Change::Create),
                    item(Kind::Job, "old", Change::Deactivate),
                ],
                desired: None,
                source: Default::default(),
            }],
        };
        assert_eq!(
            updates(&plan),
            [
                (
                    "shop",
                    "~ job shop.export: schedule: \"* * * * *\" → \"*/7 * * * *\"; attempts: 1 → 3"
                        .to_owned()
                ),
                (
                    "shop",
                    "~ app shop.web restarts: env.PORT changed".to_owned()
                ),
                (
                    "shop",
                    format!("~ job shop.long: command: {}… → []", "x".repeat(200))
                ),
            ]
        );
    }
}
