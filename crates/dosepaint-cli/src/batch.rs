//! `dosepaint batch`: one shard of a cohort manifest (see docs/scaling.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use dosepaint::PlanSpec;
use serde::Serialize;

use crate::CliResult;

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq)]
struct Case {
    name: String,
    spec: PathBuf,
    out: PathBuf,
}

#[derive(Serialize)]
struct Outcome {
    case: String,
    status: &'static str,
    error: Option<String>,
    seconds: f64,
}

/// Parses `I/N` (1-based).
fn parse_shard(s: &str) -> CliResult<(usize, usize)> {
    let bad = || format!("--shard \"{s}\": write it as I/N with 1 <= I <= N, e.g. 3/10");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Reads the manifest: a header with `case` and `spec` (and optionally `out`).
fn read_manifest(path: &Path) -> CliResult<Vec<Case>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let (_, header) = lines
        .next()
        .ok_or_else(|| format!("{}: empty manifest", path.display()))?;
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(ci), Some(si)) = (col("case"), col("spec")) else {
        return Err(format!(
            "{}: the header must name the columns case and spec (and optionally out)",
            path.display()
        ));
    };
    let oi = col("out");
    let mut cases = Vec::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
        let name =
            get(ci).ok_or_else(|| format!("{} line {}: no case name", path.display(), n + 1))?;
        let spec = get(si)
            .ok_or_else(|| format!("{} line {}: no spec for case {name}", path.display(), n + 1))?;
        let out = oi
            .and_then(get)
            .map_or_else(|| base.join("out").join(name), |o| base.join(o));
        cases.push(Case {
            name: name.to_string(),
            spec: base.join(spec),
            out,
        });
    }
    Ok(cases)
}

pub(crate) fn run(manifest: &Path, shard: &str, json: bool) -> CliResult {
    let (i, n) = parse_shard(shard)?;
    let cases = read_manifest(manifest)?;
    let mine: Vec<&Case> = cases
        .iter()
        .enumerate()
        .filter(|(k, _)| k % n == i - 1)
        .map(|(_, c)| c)
        .collect();
    eprintln!("shard {i}/{n}: {} of {} cases", mine.len(), cases.len());
    let mut outcomes = Vec::new();
    for case in mine {
        let t0 = Instant::now();
        let result = PlanSpec::from_file(&case.spec).and_then(|mut spec| {
            spec.outputs.dir.clone_from(&case.out);
            crate::run_with_progress(&spec, false)
        });
        let seconds = t0.elapsed().as_secs_f64();
        match result {
            Ok(_) => {
                eprintln!("  {}: done in {seconds:.1} s", case.name);
                outcomes.push(Outcome {
                    case: case.name.clone(),
                    status: "ok",
                    error: None,
                    seconds,
                });
            }
            Err(e) => {
                eprintln!("  {}: FAILED: {e}", case.name);
                outcomes.push(Outcome {
                    case: case.name.clone(),
                    status: "failed",
                    error: Some(e.to_string()),
                    seconds,
                });
            }
        }
    }
    let summary = manifest.with_file_name(format!("batch-shard-{i}-of-{n}.json"));
    let text = serde_json::to_string_pretty(&outcomes).map_err(|e| e.to_string())?;
    std::fs::write(&summary, &text).map_err(|e| format!("{}: {e}", summary.display()))?;
    if json {
        println!("{text}");
    }
    let failed = outcomes.iter().filter(|o| o.status != "ok").count();
    if failed > 0 {
        return Err(format!(
            "{failed} of {} cases failed; see {}",
            outcomes.len(),
            summary.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_reject_nonsense() {
        assert_eq!(parse_shard("3/10").unwrap(), (3, 10));
        for bad in ["0/3", "4/3", "x/3", "3", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_resolves_paths_and_defaults() {
        let dir = std::env::temp_dir().join(format!("dosepaint-batch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.csv");
        std::fs::write(
            &path,
            "case,spec,out\na,specs/a.toml,res/a\n# comment\nb,specs/b.toml,\n",
        )
        .unwrap();
        let cases = read_manifest(&path).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].spec, dir.join("specs/a.toml"));
        assert_eq!(cases[0].out, dir.join("res/a"));
        assert_eq!(cases[1].out, dir.join("out").join("b"));
        std::fs::write(&path, "name,file\na,b\n").unwrap();
        assert!(read_manifest(&path).unwrap_err().contains("case and spec"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
