//! The man pages and shell completions that the wheel and the container image install
//! (`packaging/wheel-data/data/share`) are generated from the command-line definition. This test fails
//! when the committed files no longer match it; write them again with
//! `IDLEGATE_BLESS=1 cargo test -p idlegate --test shell_files`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// `(path under packaging/wheel-data/data/share, contents)` for every generated file.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    // The man page names the release, not the commit: the files change with the version only.
    let mut command = idlegate::cli::command().version(env!("CARGO_PKG_VERSION"));
    // Built, subcommands know their whole command line (`idlegate hash-password`).
    command.build();
    let mut files = Vec::new();
    let mut pages = vec![(String::from("idlegate"), command.clone())];
    let pages_for = |sub: &&clap::Command| !sub.is_hide_set() && sub.get_name() != "help";
    for sub in command.get_subcommands().filter(pages_for) {
        let name = format!("idlegate-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .version(env!("CARGO_PKG_VERSION"));
        pages.push((name, page));
    }
    for (name, page) in pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut roff)
            .expect("renders into memory");
        files.push((Path::new("man/man1").join(format!("{name}.1")), roff));
    }
    for (shell, path) in [
        (Shell::Bash, "bash-completion/completions/idlegate"),
        (Shell::Zsh, "zsh/site-functions/_idlegate"),
        (Shell::Fish, "fish/vendor_completions.d/idlegate.fish"),
    ] {
        files.push((PathBuf::from(path), idlegate::cli::completions(shell)));
    }
    files
}

fn share() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/wheel-data/data/share")
}

#[test]
fn the_shipped_man_pages_and_completions_match_the_command_line() {
    let bless = std::env::var_os("IDLEGATE_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, contents) in generated() {
        let file = share().join(&path);
        if bless {
            std::fs::create_dir_all(file.parent().expect("has a folder")).expect("mkdir");
            std::fs::write(&file, &contents).expect("write");
        } else if std::fs::read(&file).ok().as_deref() != Some(contents.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?} in packaging/wheel-data/data/share; write them again with \
         IDLEGATE_BLESS=1 cargo test -p idlegate --test shell_files"
    );
}

#[test]
fn the_generated_files_say_what_they_are_for() {
    let files = generated();
    let text = |suffix: &str| {
        let (_, contents) = files
            .iter()
            .find(|(path, _)| path.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} is generated"));
        String::from_utf8(contents.clone()).expect("text")
    };
    let man = text("man/man1/idlegate.1");
    assert!(man.contains(".TH idlegate 1"), "{man}");
    assert!(man.contains("idle\\-timeout"), "options are listed: {man}");
    assert!(text("man/man1/idlegate-hash-password.1").contains("Argon2id"));
    assert!(text("bash-completion/completions/idlegate").contains("--idle-timeout"));
    assert!(text("zsh/site-functions/_idlegate").starts_with("#compdef idlegate"));
    assert!(text("fish/vendor_completions.d/idlegate.fish").contains("complete -c idlegate"));
}
