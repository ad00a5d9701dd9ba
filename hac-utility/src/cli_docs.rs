//! Shell completions and man pages, generated from the command-line definition itself
//! (`clap_complete`, `clap_mangen`), so they list exactly the commands and flags the binary
//! takes: `hac completions bash|zsh|fish|elvish|powershell` and `hac man [--out DIR]`.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Writes the completion script of `cmd` (binary name `bin`) for `shell` to `out`.
pub fn completions(mut cmd: clap::Command, bin: &str, shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut cmd, bin, out);
}

/// The man page of `cmd` itself (its options and the list of its subcommands), in roff.
pub fn man_page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    Ok(page)
}

/// Writes one man page per command and visible subcommand into `dir` (`hac.1`,
/// `hac-serve.1`, `hac-ctl-commit.1`, …), creating `dir` if needed; returns the man pages now
/// in `dir`, sorted.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    written.sort();
    Ok(written)
}
