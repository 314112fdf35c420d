//! Where the commands' answers go, and the one rule for a reader that goes away:
//! `iamlease … | head -1` is a normal end, not an error. The first `EPIPE` closes `Out`; what
//! follows is dropped and the command finishes as if it had all been read (exit 0). Any other
//! write error (a full disk) is an error. `println!` would panic on a closed pipe, so nothing in
//! the binary uses it (`clippy::print_stdout` and `print_stderr` are denied in `main.rs`);
//! messages for the person go through `note!`, which cannot fail either.
//!
//! Also the formats shared by several commands: aligned tables, key lists, warnings.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use serde_json::Value;

use super::ServerSaidNo;

/// Standard output, buffered, counting what the reader took.
pub struct Out {
    inner: BufWriter<Sink>,
}

/// Standard output's file descriptor itself (a duplicate of it), below every buffer, so that
/// `delivered` counts bytes the kernel took, not bytes a buffer holds.
struct Sink {
    file: Option<File>,
    delivered: u64,
    closed: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.file.as_mut().filter(|_| !self.closed) else {
            return Ok(buf.len());
        };
        match file.write(buf) {
            Ok(n) => {
                self.delivered += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("writing to standard output: {e}"),
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Out {
    pub fn stdout() -> Out {
        // No standard output at all (`>&-`) is a reader that is already gone.
        let file = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from);
        Out {
            inner: BufWriter::new(Sink {
                closed: file.is_none(),
                file,
                delivered: 0,
            }),
        }
    }

    /// The reader went away (or there never was one).
    pub fn closed(&self) -> bool {
        self.inner.get_ref().closed
    }

    /// Flushes, then lets standard output go for good: our copy of it and descriptor 1 itself
    /// (pointed at /dev/null), so a reader waiting for the end of the output gets it while the
    /// process runs on (the agent, in `eval "$(iamlease agent … &)"`). What is written after
    /// this is dropped.
    pub fn let_go(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        let sink = self.inner.get_mut();
        sink.file = None;
        sink.closed = true;
        let null = File::options().write(true).open("/dev/null")?;
        nix::unistd::dup2_stdout(null).map_err(io::Error::from)
    }

    /// Bytes the reader has been handed so far (after a `flush`, everything written).
    pub fn delivered(&self) -> u64 {
        self.inner.get_ref().delivered
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A line on standard error for the person at the terminal; if nobody can read it (a closed
/// pipe), there is nowhere else to say it, so the failure is ignored.
pub fn write_note(line: std::fmt::Arguments) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// `eprintln!` that cannot panic: see `write_note`.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::cli::write_note(format_args!($($arg)*))
    };
}
pub(crate) use note;

/// The keys of a LIST answer, one a line.
pub fn print_keys(out: &mut impl Write, resp: anyhow::Result<Value>) -> anyhow::Result<()> {
    match resp {
        Ok(v) => {
            for k in v["data"]["keys"].as_array().into_iter().flatten() {
                writeln!(out, "{}", text(k))?;
            }
            Ok(())
        }
        // An empty LIST is a 404 with no errors in Vault's API: nothing to show, not a failure.
        Err(e)
            if e.downcast_ref::<ServerSaidNo>().is_some_and(|s| {
                s.status == reqwest::StatusCode::NOT_FOUND && s.message == "nothing found"
            }) =>
        {
            note!("No entries found");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub fn print_warnings(resp: &Value) {
    for w in resp["warnings"].as_array().into_iter().flatten() {
        note!("WARNING! {}", text(w));
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "n/a".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

/// An object's fields as a Key/Value table.
pub fn print_table(out: &mut impl Write, data: &Value) -> io::Result<()> {
    let mut rows = vec![vec!["Key".to_owned(), "Value".to_owned()]];
    if let Some(map) = data.as_object() {
        for (k, v) in map {
            rows.push(vec![k.clone(), text(v)]);
        }
    }
    print_rows(out, &rows)
}

/// Aligned columns with a dashed rule under the header, like the vault CLI.
pub fn print_rows(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("    ").trim_end())?;
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            writeln!(out, "{}", rule.join("    "))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe whose reader is gone: writing to it is EPIPE (Rust ignores SIGPIPE).
    fn closed_pipe() -> Sink {
        let (reader, writer) = io::pipe().unwrap();
        drop(reader);
        Sink {
            file: Some(File::from(std::os::fd::OwnedFd::from(writer))),
            delivered: 0,
            closed: false,
        }
    }

    #[test]
    fn a_reader_that_went_away_ends_the_output_quietly() {
        let mut out = Out {
            inner: BufWriter::new(closed_pipe()),
        };
        for n in 0..10_000 {
            writeln!(out, "line {n}").unwrap();
        }
        out.flush().unwrap();
        assert!(out.closed());
        assert_eq!(out.delivered(), 0);
    }

    #[test]
    fn what_the_reader_took_is_counted() {
        let (mut reader, writer) = io::pipe().unwrap();
        let mut out = Out {
            inner: BufWriter::new(Sink {
                file: Some(File::from(std::os::fd::OwnedFd::from(writer))),
                delivered: 0,
                closed: false,
            }),
        };
        write!(out, "abc").unwrap();
        assert_eq!(out.delivered(), 0, "still in the buffer");
        out.flush().unwrap();
        assert_eq!(out.delivered(), 3);
        drop(out);
        assert_eq!(io::read_to_string(&mut reader).unwrap(), "abc");
    }
}
