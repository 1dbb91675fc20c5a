//! Render a [`Plan`] as text, Terraform/Nomad style. Pure: returns strings.

use super::diff::{Change, Kind, Plan};

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
                out.push_str(&format!(
                    "      {}: {} → {}\n",
                    field.field, field.old, field.new
                ));
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
                    out.push_str(&format!(
                        "        {}: {} → {}\n",
                        field.field, field.old, field.new
                    ));
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

/// One line per changed project, for logs: `mypro: + job hello; ~ job sync (schedule); - app old`.
pub fn one_line(plan: &Plan) -> Vec<String> {
    plan.projects
        .iter()
        .map(|project| {
            let mut parts = Vec::new();
            match &project.change {
                Change::Update(fields) => parts.push(format!(
                    "~ project ({})",
                    fields
                        .iter()
                        .map(|f| f.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Change::Create => parts.push("+ project".to_owned()),
                Change::Deactivate => parts.push("- project".to_owned()),
                Change::Unchanged => {}
            }
            for item in project.items.iter().filter(|i| i.change.is_change()) {
                let kind = if item.kind == Kind::Job { "job" } else { "app" };
                match &item.change {
                    Change::Update(fields) => parts.push(format!(
                        "~ {kind} {} ({})",
                        item.name,
                        fields
                            .iter()
                            .map(|f| format!("{} {} → {}", f.field, f.old, f.new))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    other => parts.push(format!("{} {kind} {}", other.sign(), item.name)),
                }
            }
            format!("{}: {}", project.name, parts.join("; "))
        })
        .collect()
}
