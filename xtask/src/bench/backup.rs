//! `cargo xtask bench backup`: is the host side of `backup create` fast enough not to slow a dump?
//!
//! Input: a synthetic mongodump archive of game-history documents (valid framing and CRCs). Three
//! timings on the same bytes, each the best of `--runs`:
//! - baseline: `gzip -6 < archive | sha256sum` — what a shell-script backup does on the host;
//! - pipeline: a gzip -6 producer thread (standing in for `mongodump --gzip`) streaming through a
//!   pipe into exactly what `backup create` runs on the host: sha256 + write to disk + a parser
//!   thread that gunzips and checks every namespace's CRC;
//! - host side only: the pre-compressed stream through that same host code.
//!
//! Throughput is uncompressed archive bytes per second, so all three compare directly. The target
//! (`--target-mb-s`, default 80) applies to the host side: that is the part `backup create` adds.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::backup::pipeline::ArchiveWriter;
use crate::backup::synthetic::SyntheticArchive;
use crate::container_exec::Invocation;

#[derive(Args, Debug)]
pub struct BackupBench {
    /// Size of the uncompressed synthetic archive.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    size_mib: usize,
    /// Timed runs per contender; the best counts.
    #[arg(long, value_name = "N", default_value_t = 3)]
    runs: u32,
    /// Host-side throughput to reach, in MB/s (10^6 bytes) of uncompressed archive.
    #[arg(long, value_name = "MB_S", default_value_t = 80.0)]
    target_mb_s: f64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Figures {
    input_bytes: u64,
    compressed_bytes: u64,
    documents: u64,
    cpus: usize,
    baseline_gzip6_sha256sum_mb_s: f64,
    pipeline_gzip6_plus_host_mb_s: f64,
    host_side_only_mb_s: f64,
    pipeline_vs_baseline: f64,
    host_side_vs_baseline: f64,
    target_mb_s: f64,
    target_met: bool,
}

impl BackupBench {
    pub fn run(self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        ensure!(self.size_mib > 0, "--size-mib: must be at least 1");
        ensure!(self.runs > 0, "--runs: must be at least 1");
        if cfg!(debug_assertions) {
            return self.rerun_optimized();
        }
        let work = tempfile::tempdir().context("creating a scratch directory")?;
        let raw = work.path().join("synthetic.archive");
        let compressed = work.path().join("synthetic.archive.gz");
        eprintln!("generating a {} MiB synthetic archive", self.size_mib);
        let documents = write_synthetic(&raw, self.size_mib * 1024 * 1024)?;
        compress_file(&raw, &compressed)?;
        let input_bytes = std::fs::metadata(&raw)?.len();
        let compressed_bytes = std::fs::metadata(&compressed)?.len();
        // Page cache warm for everyone.
        for path in [&raw, &compressed] {
            io::copy(&mut File::open(path)?, &mut io::sink())?;
        }

        let baseline = best_of(self.runs, || baseline(&raw))?;
        let pipeline = best_of(self.runs, || pipeline(&raw, work.path(), documents))?;
        let host_side = best_of(self.runs, || host_side(&compressed, work.path(), documents))?;

        let mb_s = |elapsed: Duration| input_bytes as f64 / 1e6 / elapsed.as_secs_f64();
        let figures = Figures {
            input_bytes,
            compressed_bytes,
            documents,
            cpus: thread::available_parallelism().map_or(1, usize::from),
            baseline_gzip6_sha256sum_mb_s: round(mb_s(baseline)),
            pipeline_gzip6_plus_host_mb_s: round(mb_s(pipeline)),
            host_side_only_mb_s: round(mb_s(host_side)),
            pipeline_vs_baseline: round(baseline.as_secs_f64() / pipeline.as_secs_f64()),
            host_side_vs_baseline: round(baseline.as_secs_f64() / host_side.as_secs_f64()),
            target_mb_s: self.target_mb_s,
            target_met: mb_s(host_side) >= self.target_mb_s,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&figures)?);
        } else {
            print_figures(&figures);
        }
        if !figures.target_met {
            bail!(
                "host side of backup create ran at {} MB/s, below the {} MB/s target",
                figures.host_side_only_mb_s,
                self.target_mb_s
            );
        }
        Ok(())
    }

    /// Timings of unoptimized code mean nothing: run the same command from a release build.
    fn rerun_optimized(&self) -> anyhow::Result<()> {
        let mut invocation = Invocation::new("cargo").args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "xtask",
            "--",
            "bench",
            "backup",
        ]);
        invocation = invocation
            .arg(format!("--size-mib={}", self.size_mib))
            .arg(format!("--runs={}", self.runs))
            .arg(format!("--target-mb-s={}", self.target_mb_s));
        if self.json {
            invocation = invocation.arg("--json");
        }
        invocation.stream(None, &mut io::stdout())
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn best_of(
    runs: u32,
    mut contender: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(contender()?);
    }
    Ok(best)
}

fn write_synthetic(path: &Path, bytes: usize) -> anyhow::Result<u64> {
    let mut out = BufWriter::new(File::create(path)?);
    let documents = SyntheticArchive::new(bytes).write_to(&mut out)?;
    out.flush()?;
    Ok(documents)
}

fn compress_file(raw: &Path, compressed: &Path) -> anyhow::Result<()> {
    let mut encoder = GzEncoder::new(
        BufWriter::new(File::create(compressed)?),
        Compression::new(6),
    );
    io::copy(&mut File::open(raw)?, &mut encoder)?;
    encoder.finish()?.flush()?;
    Ok(())
}

fn baseline(raw: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = Invocation::new("sh")
        .args(["-c", "gzip -6 < \"$0\" | sha256sum"])
        .arg(raw.display().to_string())
        .capture(None)?;
    let elapsed = started.elapsed();
    ensure!(output.len() >= 64, "sha256sum printed {output:?}");
    Ok(elapsed)
}

/// A gzip -6 producer thread (as mongodump --gzip) piping into the host pipeline.
fn pipeline(raw: &Path, scratch: &Path, documents: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (mut reader, writer) = io::pipe().context("creating a pipe")?;
    let raw = raw.to_path_buf();
    let producer = thread::spawn(move || -> io::Result<()> {
        let mut encoder = GzEncoder::new(writer, Compression::new(6));
        io::copy(&mut File::open(raw)?, &mut encoder)?;
        encoder.finish()?;
        Ok(())
    });
    let result = run_host_side(&mut reader, scratch, documents);
    drop(reader);
    match producer.join() {
        Ok(produced) => produced.context("compressing the input")?,
        Err(_) => bail!("the compressing thread panicked"),
    }
    result?;
    Ok(started.elapsed())
}

fn host_side(compressed: &Path, scratch: &Path, documents: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    run_host_side(&mut File::open(compressed)?, scratch, documents)?;
    Ok(started.elapsed())
}

/// What `backup create` does with mongodump's standard output, checked so no shortcut is timed.
fn run_host_side(input: &mut dyn Read, scratch: &Path, documents: u64) -> anyhow::Result<()> {
    let mut writer = ArchiveWriter::create(scratch, "bench.archive.gz", None)?;
    crate::backup::pipeline::copy_stream(input, &mut writer)?;
    let written = writer.finish()?;
    let report = written
        .parsed
        .as_ref()
        .map_err(|error| anyhow::anyhow!("the benchmark archive did not parse: {error}"))?;
    ensure!(
        report.total_documents() == documents && report.crc_mismatches().next().is_none(),
        "the benchmark archive parsed wrongly"
    );
    let path: PathBuf = scratch.join("bench.archive.gz");
    written.persist(&path)?;
    std::fs::remove_file(&path)?;
    Ok(())
}

fn print_figures(figures: &Figures) {
    println!(
        "backup create host pipeline, {:.0} MB synthetic archive ({} documents, {:.0} MB gzipped), {} CPUs",
        figures.input_bytes as f64 / 1e6,
        figures.documents,
        figures.compressed_bytes as f64 / 1e6,
        figures.cpus
    );
    println!(
        "  baseline  gzip -6 | sha256sum                      {:>8.1} MB/s",
        figures.baseline_gzip6_sha256sum_mb_s
    );
    println!(
        "  pipeline  gzip -6 producer -> create's host side   {:>8.1} MB/s  ({:.2}x baseline)",
        figures.pipeline_gzip6_plus_host_mb_s, figures.pipeline_vs_baseline
    );
    println!(
        "  host side only (sha256 + write + gunzip/parse/CRC) {:>8.1} MB/s  ({:.2}x baseline)  target >= {} MB/s: {}",
        figures.host_side_only_mb_s,
        figures.host_side_vs_baseline,
        figures.target_mb_s,
        if figures.target_met { "met" } else { "MISSED" }
    );
}
