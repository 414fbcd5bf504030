//! The library's structure, checked from its own source (parsed with `syn`):
//!
//! - no import circle among its top-level modules, and no import upward through the layers
//!   `docs/architecture.md` draws;
//! - no file over 500 lines and no function over 80 lines, tests apart.
//!
//! Test code (`#[cfg(test)]` items, `tests.rs` files and `tests/` folders) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, lowest first: a module may use modules of its own layer or below, never
/// above. Within a layer, the import graph must still have no circle.
const LAYERS: &[&[&str]] = &[
    &[
        "config",
        "error",
        "redact",
        "paths",
        "ws",
        "lifecycle",
        "csrf",
        "limits",
        "procfs",
    ],
    &["store", "pages", "web"],
    &["apps", "tracker"],
    &["auth", "client", "metrics", "audit", "capacity"],
    &["proxy"],
    &["routes", "admin"],
    &["dispatch"],
    &["server", "launcher", "logging", "cli"],
];
const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;

/// What the checks found in one crate's `src/`.
#[derive(Debug, Default)]
struct Structure {
    /// Top-level module → the top-level modules it uses.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// `(path, lines)` of files over the limit.
    long_files: Vec<(String, usize)>,
    /// `(path:line name, lines)` of functions over the limit.
    long_functions: Vec<(String, usize)>,
}

fn is_test_attr(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr.meta.require_list().is_ok_and(|list| {
                list.tokens
                    .to_string()
                    .split_whitespace()
                    .any(|t| t == "test")
            })
    })
}

/// Walks one file: paths it names, and the lengths of its functions.
struct FileVisitor<'a> {
    /// The file's module path (`["tracker", "admission"]`).
    module: Vec<String>,
    /// Absolute module paths named (`crate::x`, `super::x`, `self::x`), first segments
    /// resolved.
    used: BTreeSet<String>,
    functions: Vec<(String, usize, usize)>,
    test_lines: usize,
    _file: &'a Path,
}

impl FileVisitor<'_> {
    /// The top-level module a path names, resolved from this file (and the inline modules
    /// around the path).
    fn top_of(&self, segments: &[String]) -> Option<String> {
        let mut at: Vec<String> = self.module.clone();
        let mut rest = segments.iter();
        match segments.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest.next();
            }
            Some("super") | Some("self") => {}
            _ => return None,
        }
        for segment in rest {
            match segment.as_str() {
                "super" => {
                    at.pop();
                }
                "self" => {}
                name => {
                    at.push(name.to_owned());
                    break;
                }
            }
        }
        at.first().cloned()
    }

    fn note_path(&mut self, segments: Vec<String>) {
        if let Some(top) = self.top_of(&segments) {
            self.used.insert(top);
        }
    }

    fn note_function(&mut self, name: String, span: proc_macro2::Span) {
        let (start, end) = (span.start().line, span.end().line);
        self.functions.push((name, start, end - start + 1));
    }
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            use_paths(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => {
            let mut full = prefix.clone();
            full.push(name.ident.to_string());
            out.push(full);
        }
        syn::UseTree::Rename(rename) => {
            let mut full = prefix.clone();
            full.push(rename.ident.to_string());
            out.push(full);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(group) => {
            for item in &group.items {
                use_paths(item, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for FileVisitor<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_attr(&item.attrs) {
            if item.content.is_some() {
                let span = syn::spanned::Spanned::span(item);
                self.test_lines += span.end().line - span.start().line + 1;
            }
            return;
        }
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if is_test_attr(&item.attrs) {
            return;
        }
        self.note_function(
            item.sig.ident.to_string(),
            syn::spanned::Spanned::span(item),
        );
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_test_attr(&item.attrs) {
            return;
        }
        self.note_function(
            item.sig.ident.to_string(),
            syn::spanned::Spanned::span(item),
        );
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if item.default.is_some() {
            self.note_function(
                item.sig.ident.to_string(),
                syn::spanned::Spanned::span(item),
            );
        }
        syn::visit::visit_trait_item_fn(self, item);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_test_attr(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_test_attr(&item.attrs) {
            return;
        }
        let mut out = Vec::new();
        use_paths(&item.tree, &mut Vec::new(), &mut out);
        for path in out {
            self.note_path(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note_path(segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Paths inside macro calls (`tracing::info!`, `matches!`) are tokens, not parsed:
        // look for `crate :: name` in them.
        let text = mac.tokens.to_string();
        for piece in text.split("crate :: ").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                self.used.insert(name);
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// The module path of a file under `src/` (`tracker/mod.rs` → `["tracker"]`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// Reads every file of a crate's `src/`.
fn read_structure(src: &Path) -> Structure {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut structure = Structure::default();
    for path in files {
        let relative = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
        let text = std::fs::read_to_string(&path).expect("readable source");
        let file = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let module = module_of(&relative);
        let top = module.first().cloned().unwrap_or_default();
        let mut visitor = FileVisitor {
            module,
            used: BTreeSet::new(),
            functions: Vec::new(),
            test_lines: 0,
            _file: &path,
        };
        visitor.visit_file(&file);
        let shown = relative.display().to_string();
        let lines = text.lines().count().saturating_sub(visitor.test_lines);
        if lines > MAX_FILE_LINES {
            structure.long_files.push((shown.clone(), lines));
        }
        for (name, line, length) in visitor.functions {
            if length > MAX_FN_LINES {
                structure
                    .long_functions
                    .push((format!("{shown}:{line} {name}"), length));
            }
        }
        if top.is_empty() {
            continue; // lib.rs, main.rs
        }
        let known: BTreeSet<String> = std::fs::read_dir(src)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                e.path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let edges = structure.edges.entry(top.clone()).or_default();
        for used in visitor.used {
            if used != top && known.contains(&used) {
                edges.insert(used);
            }
        }
    }
    structure
}

/// The circles of a graph: its strongly connected components of more than one module.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !tarjan.index.contains_key(v.as_str()) {
            tarjan.visit(v);
        }
    }
    tarjan.found
}

/// Imports that go up through [`LAYERS`] (`from → to`), and modules in no layer.
fn upward(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let layer = |name: &str| LAYERS.iter().position(|layer| layer.contains(&name));
    let mut wrong = Vec::new();
    for (from, tos) in edges {
        let Some(from_layer) = layer(from) else {
            wrong.push(format!("{from} is in no layer"));
            continue;
        };
        for to in tos {
            match layer(to) {
                Some(to_layer) if to_layer <= from_layer => {}
                Some(_) => wrong.push(format!("{from} → {to}")),
                None => wrong.push(format!("{to} is in no layer")),
            }
        }
    }
    wrong
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_in_a_circle_or_upward() {
    let structure = read_structure(&src());
    let found = circles(&structure.edges);
    assert!(
        found.is_empty(),
        "import circles: {found:?}\n{:#?}",
        structure.edges
    );
    let wrong = upward(&structure.edges);
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn no_file_or_function_is_too_long() {
    let structure = read_structure(&src());
    assert!(
        structure.long_files.is_empty() && structure.long_functions.is_empty(),
        "files over {MAX_FILE_LINES} lines (tests apart): {:#?}\nfunctions over \
         {MAX_FN_LINES} lines: {:#?}",
        structure.long_files,
        structure.long_functions
    );
}

/// The checks see a circle, an upward import and a long function when one is there.
#[test]
fn the_checks_find_what_they_look_for() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("tracker")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod config;\npub mod tracker;\n").unwrap();
    // tracker → config through `use`, config → tracker through a path in a function.
    std::fs::write(
        src.join("tracker/mod.rs"),
        "use crate::config::TabPolicy;\npub struct Tracker(TabPolicy);\n",
    )
    .unwrap();
    let body = "    let _ = 1;\n".repeat(MAX_FN_LINES);
    std::fs::write(
        src.join("config.rs"),
        format!(
            "pub struct TabPolicy;\npub fn make() -> Option<crate::tracker::Tracker> {{\n{body}    None\n}}\n\
             #[cfg(test)]\nmod tests {{\n    use crate::server::Server;\n}}\n"
        ),
    )
    .unwrap();
    let structure = read_structure(src);
    assert_eq!(
        circles(&structure.edges),
        [vec!["config".to_owned(), "tracker".to_owned()]]
    );
    assert_eq!(upward(&structure.edges), ["config → tracker"]);
    assert_eq!(structure.long_functions.len(), 1, "{structure:?}");
    assert!(
        !structure.edges["config"].contains("server"),
        "test code is left out"
    );
}
