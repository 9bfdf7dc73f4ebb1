//! Loading the OpenTofu configuration and walking its syntax trees.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::structure::{Block, Body, Structure};
use hcl::template::{Directive, Element, Template};

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Reads a file of the repository (path relative to the root).
pub(crate) fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

/// Parses a JSON file of the repository.
pub(crate) fn read_json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&read(relative))
        .unwrap_or_else(|error| panic!("{relative} is not valid JSON: {error}"))
}

/// One parsed `.tf` file.
pub(crate) struct TfFile {
    /// Path relative to the repository root, for messages.
    pub(crate) path: String,
    /// The file's text.
    pub(crate) text: String,
    /// The parsed body.
    pub(crate) body: Body,
}

impl TfFile {
    fn load(path: &Path) -> TfFile {
        let relative = path
            .strip_prefix(repo_root())
            .unwrap_or(path)
            .display()
            .to_string();
        let text = fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"));
        let body = hcl::parse(&text)
            .unwrap_or_else(|error| panic!("{relative} is not valid HCL: {error}"));
        TfFile {
            path: relative,
            text,
            body,
        }
    }

    /// The attributes of the file's `locals` blocks.
    pub(crate) fn locals(&self) -> BTreeMap<String, &Expression> {
        blocks(&self.body, "locals")
            .flat_map(|block| block.body.attributes())
            .map(|attribute| (attribute.key.to_string(), &attribute.expr))
            .collect()
    }
}

/// The `locals` of the module `file` belongs to: every file in its directory (locals are
/// module-wide in OpenTofu, so a policy in one file may use a local of another).
pub(crate) fn module_locals<'a>(
    files: &'a [TfFile],
    file: &TfFile,
) -> BTreeMap<String, &'a Expression> {
    let dir = |path: &str| Path::new(path).parent().map(Path::to_path_buf);
    files
        .iter()
        .filter(|other| dir(&other.path) == dir(&file.path))
        .flat_map(TfFile::locals)
        .collect()
}

/// Every `.tf` file under `tofu/`, in path order.
pub(crate) fn tf_files() -> Vec<TfFile> {
    let mut paths = Vec::new();
    collect_tf(&repo_root().join("tofu"), &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no .tf files under tofu/");
    paths.iter().map(|path| TfFile::load(path)).collect()
}

/// The `.tf` files directly in one directory (relative to the repository root).
pub(crate) fn module_files(dir: &str) -> Vec<TfFile> {
    let mut paths: Vec<PathBuf> = fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|error| panic!("cannot list {dir}: {error}"))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    paths.sort();
    paths.iter().map(|path| TfFile::load(path)).collect()
}

/// One `.tf` file (relative to the repository root).
pub(crate) fn tf_file(relative: &str) -> TfFile {
    TfFile::load(&repo_root().join(relative))
}

fn collect_tf(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot list {dir:?}: {error}")) {
        let path = entry.expect("readable directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() && !name.starts_with('.') {
            collect_tf(&path, out);
        } else if name.ends_with(".tf") {
            out.push(path);
        }
    }
}

/// The blocks of a body with this identifier (`resource`, `module`, `statement`, ...).
pub(crate) fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> {
    body.blocks()
        .filter(move |block| block.identifier.as_str() == identifier)
}

/// The block with this identifier and these leading labels, e.g. `resource "aws_s3_bucket" "data"`.
pub(crate) fn labelled<'a>(body: &'a Body, identifier: &str, labels: &[&str]) -> Vec<&'a Block> {
    body.blocks()
        .filter(|block| block.identifier.as_str() == identifier)
        .filter(|block| {
            labels.len() <= block.labels.len()
                && labels
                    .iter()
                    .zip(&block.labels)
                    .all(|(want, have)| have.as_str() == *want)
        })
        .collect()
}

/// `resource "TYPE" "NAME"` of a block, for messages.
pub(crate) fn describe(block: &Block) -> String {
    let labels: Vec<String> = block
        .labels
        .iter()
        .map(|label| format!("\"{}\"", label.as_str()))
        .collect();
    format!("{} {}", block.identifier.as_str(), labels.join(" "))
}

/// An attribute's expression.
pub(crate) fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.expr)
}

/// The value of a string literal (a quoted string without interpolations).
pub(crate) fn string_value(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(value) => Some(value.clone()),
        Expression::TemplateExpr(template) => {
            let template = Template::from_expr(template).ok()?;
            let mut text = String::new();
            for element in template.elements() {
                match element {
                    Element::Literal(literal) => text.push_str(literal),
                    _ => return None,
                }
            }
            Some(text)
        }
        _ => None,
    }
}

/// The elements of a template expression (quoted string with interpolations, or heredoc).
pub(crate) fn template(expr: &Expression) -> Option<Template> {
    match expr {
        Expression::TemplateExpr(template) => Some(
            Template::from_expr(template)
                .unwrap_or_else(|error| panic!("template does not parse: {error}")),
        ),
        _ => None,
    }
}

/// A traversal as names: `var.settings.batch_size` is `["var", "settings", "batch_size"]`.
/// Stops at the first operator that is not an attribute access.
pub(crate) fn traversal_path(expr: &Expression) -> Option<Vec<String>> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    let mut path = vec![root.to_string()];
    for operator in &traversal.operators {
        match operator {
            TraversalOperator::GetAttr(name) => path.push(name.to_string()),
            _ => break,
        }
    }
    Some(path)
}

/// Whether an expression is the traversal `path`, e.g. `["each", "value", "columns"]`.
pub(crate) fn is_traversal(expr: &Expression, path: &[&str]) -> bool {
    traversal_path(expr).is_some_and(|have| have == path)
}

/// The name of a function call, if the expression is one.
pub(crate) fn func_call<'a>(expr: &'a Expression, name: &str) -> Option<&'a [Expression]> {
    match expr {
        Expression::FuncCall(call) if call.name.name.as_str() == name => Some(&call.args),
        _ => None,
    }
}

/// The key of an object entry as text.
pub(crate) fn object_key(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(identifier) => Some(identifier.to_string()),
        ObjectKey::Expression(expr) => string_value(expr),
        _ => None,
    }
}

/// Calls `visit` on `expr` and every expression inside it, including template interpolations.
pub(crate) fn walk(expr: &Expression, visit: &mut dyn FnMut(&Expression)) {
    visit(expr);
    match expr {
        Expression::Array(items) => items.iter().for_each(|item| walk(item, visit)),
        Expression::Object(object) => {
            for (key, value) in object {
                if let ObjectKey::Expression(key) = key {
                    walk(key, visit);
                }
                walk(value, visit);
            }
        }
        Expression::TemplateExpr(_) => {
            if let Some(template) = template(expr) {
                walk_template(&template, visit);
            }
        }
        Expression::Traversal(traversal) => {
            walk(&traversal.expr, visit);
            for operator in &traversal.operators {
                if let TraversalOperator::Index(index) = operator {
                    walk(index, visit);
                }
            }
        }
        Expression::FuncCall(call) => call.args.iter().for_each(|arg| walk(arg, visit)),
        Expression::Parenthesis(inner) => walk(inner, visit),
        Expression::Conditional(conditional) => {
            walk(&conditional.cond_expr, visit);
            walk(&conditional.true_expr, visit);
            walk(&conditional.false_expr, visit);
        }
        Expression::Operation(operation) => match operation.as_ref() {
            hcl::expr::Operation::Unary(unary) => walk(&unary.expr, visit),
            hcl::expr::Operation::Binary(binary) => {
                walk(&binary.lhs_expr, visit);
                walk(&binary.rhs_expr, visit);
            }
        },
        Expression::ForExpr(for_expr) => {
            walk(&for_expr.collection_expr, visit);
            if let Some(key) = &for_expr.key_expr {
                walk(key, visit);
            }
            walk(&for_expr.value_expr, visit);
            if let Some(condition) = &for_expr.cond_expr {
                walk(condition, visit);
            }
        }
        _ => {}
    }
}

fn walk_template(template: &Template, visit: &mut dyn FnMut(&Expression)) {
    for element in template.elements() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(interpolation) => walk(&interpolation.expr, visit),
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(directive) => {
                    walk(&directive.cond_expr, visit);
                    walk_template(&directive.true_template, visit);
                    if let Some(false_template) = &directive.false_template {
                        walk_template(false_template, visit);
                    }
                }
                Directive::For(directive) => {
                    walk(&directive.collection_expr, visit);
                    walk_template(&directive.template, visit);
                }
            },
        }
    }
}

/// Calls `visit` on every expression of a body, its nested blocks included.
pub(crate) fn walk_body(body: &Body, visit: &mut dyn FnMut(&Expression)) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => walk(&attribute.expr, visit),
            Structure::Block(block) => walk_body(&block.body, visit),
        }
    }
}

/// Like [`walk_body`], but skips documentation attributes (`description`, `error_message`), whose
/// text may mention examples.
pub(crate) fn walk_code(body: &Body, visit: &mut dyn FnMut(&Expression)) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute)
                if ["description", "error_message"].contains(&attribute.key.as_str()) => {}
            Structure::Attribute(attribute) => walk(&attribute.expr, visit),
            Structure::Block(block) => walk_code(&block.body, visit),
        }
    }
}

/// Every traversal path in a set of files.
pub(crate) fn traversal_paths(files: &[TfFile]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for file in files {
        walk_body(&file.body, &mut |expr| {
            if let Some(path) = traversal_path(expr) {
                paths.push(path);
            }
        });
    }
    paths
}

/// Every traversal path in a set of files outside `variable` blocks: a value that is only
/// validated is not used.
pub(crate) fn used_traversal_paths(files: &[TfFile]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for file in files {
        for structure in file.body.iter() {
            let mut visit = |expr: &Expression| {
                if let Some(path) = traversal_path(expr) {
                    paths.push(path);
                }
            };
            match structure {
                Structure::Block(block) if block.identifier.as_str() == "variable" => {}
                Structure::Block(block) => walk_body(&block.body, &mut visit),
                Structure::Attribute(attribute) => walk(&attribute.expr, &mut visit),
            }
        }
    }
    paths
}

/// The literal text pieces inside an expression: string literals and the literal parts of
/// templates. `local.NAME` traversals are followed into `locals` (depth-limited).
pub(crate) fn literals(expr: &Expression, locals: &BTreeMap<String, &Expression>) -> Vec<String> {
    let mut out = Vec::new();
    collect_literals(expr, locals, 0, &mut out);
    out
}

fn collect_literals(
    expr: &Expression,
    locals: &BTreeMap<String, &Expression>,
    depth: usize,
    out: &mut Vec<String>,
) {
    walk(expr, &mut |inner| match inner {
        Expression::String(value) => out.push(value.clone()),
        Expression::TemplateExpr(_) => {
            if let Some(template) = template(inner) {
                for element in template.elements() {
                    if let Element::Literal(literal) = element {
                        out.push(literal.clone());
                    }
                }
            }
        }
        Expression::Traversal(_) if depth < 4 => {
            if let Some(path) = traversal_path(inner)
                && path.len() >= 2
                && path[0] == "local"
                && let Some(target) = locals.get(&path[1])
            {
                collect_literals(target, locals, depth + 1, out);
            }
        }
        _ => {}
    });
}

/// The blocks of an `aws_iam_policy_document`'s statements: `statement` blocks and the `content`
/// of `dynamic "statement"` blocks.
pub(crate) fn policy_statements(document: &Block) -> Vec<&Body> {
    let mut statements: Vec<&Body> = Vec::new();
    for block in document.body.blocks() {
        match block.identifier.as_str() {
            "statement" => statements.push(&block.body),
            "dynamic"
                if block
                    .labels
                    .first()
                    .is_some_and(|l| l.as_str() == "statement") =>
            {
                statements.extend(blocks(&block.body, "content").map(|content| &content.body));
            }
            _ => {}
        }
    }
    statements
}

/// Whether a line of HCL carries a comment (`#` or `//` outside a string).
pub(crate) fn has_comment(line: &str) -> bool {
    let mut in_string = false;
    let mut previous = ' ';
    for (index, character) in line.char_indices() {
        match character {
            '"' if previous != '\\' => in_string = !in_string,
            '#' if !in_string => return true,
            '/' if !in_string && line[index + 1..].starts_with('/') => return true,
            _ => {}
        }
        previous = character;
    }
    false
}

/// The statements a module's table of resource families makes (`tofu/modules/ci_access/
/// families.tf`): for each family of `local.families` and each policy of
/// `local.family_policies` the family has actions for, the statement the `families` document's
/// `dynamic "statement"` renders, as a body with `sid`, `actions`, `resources` and one
/// `StringEquals` `condition` block per entry of the family's `conditions`. Empty for a module
/// without the table.
pub(crate) fn family_statements(files: &[TfFile], file: &TfFile) -> Vec<Body> {
    let file_locals = file.locals();
    let (Some(Expression::Object(families)), Some(Expression::Object(policies))) = (
        file_locals.get("families").copied(),
        file_locals.get("family_policies").copied(),
    ) else {
        return Vec::new();
    };
    let locals = module_locals(files, file);
    let field = |object: &hcl::expr::Object<ObjectKey, Expression>, name: &str| {
        object
            .iter()
            .find(|(key, _)| object_key(key).as_deref() == Some(name))
            .map(|(_, value)| value.clone())
    };
    let mut statements = Vec::new();
    for (family_key, family) in families {
        let family_name = object_key(family_key).expect("a family is named by an identifier");
        let Expression::Object(family) = family else {
            panic!("{}: families.{family_name} must be an object", file.path);
        };
        let resources = field(family, "resources")
            .unwrap_or_else(|| panic!("{}: families.{family_name} has no resources", file.path));
        let conditions = match field(family, "conditions") {
            None => Vec::new(),
            Some(expr) => {
                let resolved = match &expr {
                    Expression::Traversal(_) => traversal_path(&expr)
                        .filter(|path| path.len() == 2 && path[0] == "local")
                        .and_then(|path| locals.get(&path[1]).copied().cloned())
                        .unwrap_or_else(|| {
                            panic!(
                                "{}: families.{family_name}.conditions: unknown local",
                                file.path
                            )
                        }),
                    _ => expr.clone(),
                };
                let Expression::Object(conditions) = resolved else {
                    panic!(
                        "{}: families.{family_name}.conditions must be an object",
                        file.path
                    );
                };
                conditions
                    .iter()
                    .map(|(variable, value)| {
                        Block::builder("condition")
                            .add_attribute(("test", "StringEquals"))
                            .add_attribute((
                                "variable",
                                object_key(variable).expect("a condition key is a string"),
                            ))
                            .add_attribute(("values", Expression::Array(vec![value.clone()])))
                            .build()
                    })
                    .collect()
            }
        };
        for (policy_key, prefix) in policies {
            let policy = object_key(policy_key).expect("a policy is named by an identifier");
            let Some(actions) = field(family, &policy) else {
                continue;
            };
            let prefix = string_value(prefix).expect("a sid prefix is a literal");
            statements.push(
                Body::builder()
                    .add_attribute(("sid", format!("{prefix}{family_name}")))
                    .add_attribute(("actions", actions))
                    .add_attribute(("resources", resources.clone()))
                    .add_blocks(conditions.clone())
                    .build(),
            );
        }
    }
    statements
}
