//! A job's command elements rendered as Handlebars templates, each on its own (pure).
//!
//! Strict (an unknown `{{args.x}}` is an error, never an empty string), nothing HTML-escaped.
//! A value renders exactly as it was given: a string as itself, a number as the text it was
//! written with (`12345678901234567890123`, `2.50`: `serde_json`'s `arbitrary_precision`
//! keeps it; only an exponent is spelled `e+2`, which is why `--arg` keeps `1e2` as a
//! string), `true`/`false`, `null` as `null`, arrays and objects as compact JSON. Plain
//! Handlebars would print `100.0`, `[object]` and an empty string; so every `{{path}}`
//! expression of a template is rewritten to call [`EXACT`], which renders that way. Block
//! helpers (`{{#if args.x}}`) see the values as they are.

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, Path, RenderContext, RenderError,
    RenderErrorReason, Template,
};
use serde_json::Value;

/// The helper every value expression is rewritten to.
const EXACT: &str = "coco-exact-value";

/// Renders command elements against one context.
pub struct Renderer {
    handlebars: Handlebars<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Self {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(handlebars::no_escape);
        handlebars.register_helper(EXACT, Box::new(exact));
        Self { handlebars }
    }

    /// `element` rendered with `context`; the error's message on failure.
    pub fn render(&mut self, element: &str, context: &Value) -> Result<String, String> {
        let mut template = Template::compile(element).map_err(|e| e.to_string())?;
        exact_values(&mut template.elements);
        self.handlebars.register_template("element", template);
        self.handlebars
            .render("element", context)
            .map_err(|e| e.to_string())
    }
}

/// The text a value renders as (see the module documentation).
pub fn exact_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Rewrite every `{{path}}` / `{{{path}}}` expression (no parameters, no hash) in `elements`,
/// blocks included, into `{{coco-exact-value path}}`.
fn exact_values(elements: &mut [TemplateElement]) {
    for element in elements {
        match element {
            TemplateElement::Expression(expression)
            | TemplateElement::HtmlExpression(expression)
                if !expression.block
                    && expression.params.is_empty()
                    && expression.hash.is_empty() =>
            {
                let path = match &expression.name {
                    Parameter::Path(path) => Some(path.clone()),
                    Parameter::Name(name) => Path::parse(name).ok(),
                    _ => None,
                };
                if let Some(path) = path {
                    expression.params = vec![Parameter::Path(path)];
                    expression.name = Parameter::Name(EXACT.to_owned());
                }
            }
            TemplateElement::HelperBlock(block) => {
                for inner in [&mut block.template, &mut block.inverse]
                    .into_iter()
                    .flatten()
                {
                    exact_values(&mut inner.elements);
                }
            }
            _ => {}
        }
    }
}

/// The [`EXACT`] helper: its parameter's [`exact_text`]; a missing value is the strict-mode
/// error plain Handlebars gives.
fn exact(
    helper: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let param = helper
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(EXACT, 0))?;
    if param.is_value_missing() {
        return Err(RenderError::strict_error(param.relative_path()));
    }
    out.write(&exact_text(param.value()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(element: &str, args: &str) -> Result<String, String> {
        let args: Value = serde_json::from_str(args).unwrap();
        Renderer::new().render(element, &json!({ "args": args, "job": "p.j" }))
    }

    #[test]
    fn values_render_as_given() {
        let args = r#"{"big": 12345678901234567890123, "e": 1e+2, "f": 2.50, "neg": -0,
            "o": {"a": 1, "b": [1, 2.0]}, "l": [1, "x"], "n": null, "t": true, "s": "a b"}"#;
        for (element, rendered) in [
            ("{{args.big}}", "12345678901234567890123"),
            ("{{args.e}}", "1e+2"),
            ("{{args.f}}", "2.50"),
            ("{{args.neg}}", "-0"),
            ("{{args.o}}", r#"{"a":1,"b":[1,2.0]}"#),
            ("{{args.l}}", r#"[1,"x"]"#),
            ("{{args.n}}", "null"),
            ("{{args.t}}", "true"),
            ("{{args.s}}", "a b"),
            (
                "x={{args.e}},{{{args.big}}}",
                "x=1e+2,12345678901234567890123",
            ),
            ("{{job}}", "p.j"),
            ("{{args.o.b}}", "[1,2.0]"),
        ] {
            assert_eq!(render(element, args).unwrap(), rendered, "{element}");
        }
    }

    #[test]
    fn blocks_and_helpers_still_work() {
        let args = r#"{"t": false, "e": 1.50, "l": [1, 2]}"#;
        assert_eq!(
            render("{{#if args.t}}yes{{else}}no {{args.e}}{{/if}}", args).unwrap(),
            "no 1.50"
        );
        assert_eq!(
            render("{{#each args.l}}<{{this}}>{{/each}}", args).unwrap(),
            "<1><2>"
        );
        assert_eq!(render("{{lookup args \"e\"}}", args).unwrap(), "1.50");
    }

    #[test]
    fn unknown_values_and_bad_templates_are_errors() {
        let error = render("{{args.missing}}", "{}").unwrap_err();
        assert!(error.contains("args.missing"), "{error}");
        assert!(render("{{#if}}", "{}").is_err());
        assert!(render("{{", "{}").is_err());
    }
}
