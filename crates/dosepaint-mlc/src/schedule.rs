//! Unidirectional leaf schedules (the sweep) under interleaf constraints.
//!
//! A unidirectional schedule gives, for every bixel (i, j), the time `tr` at
//! which the right leaf of row i uncovers it and the time `tl >= tr` at which
//! the left leaf covers it again; the bixel receives `tl - tr`. Leaves move
//! from -x to +x only, so `tr` and `tl` are non-decreasing along the row.
//! Every constraint is a difference constraint `x >= y + c`:
//!
//! * row:  `tr[j] >= tr[j-1] + tau`, `tl[j] >= tl[j-1] + tau` (`tau` = time
//!   for a leaf to cross a bixel at maximum speed; 0 for step and shoot);
//! * no interdigitation (rows i, k adjacent): `tr[k][j] <= tl[i][j]`
//!   (the left leaf of i never passes the right leaf of k);
//! * tongue-and-groove (reference map `a`, `a[i][j] <= a[k][j]`): the
//!   exposure window of (i, j) lies inside that of (k, j).
//!
//! The feasible set is closed under the pointwise minimum, so the least
//! solution exists, minimises every time at once, and is found by raising
//! lower bounds column by column (Kamath et al. 2003, 2004 give the same
//! schedules for the interdigitation and tongue-and-groove cases).

use crate::map::LevelMap;
use crate::params::LeafConstraints;
use crate::segment::Segment;

/// What a schedule must respect.
pub(crate) struct Ctx<'a> {
    pub n_rows: usize,
    pub n_cols: usize,
    /// The map whose order decides tongue-and-groove nesting.
    pub reference: &'a [u32],
    pub icc: bool,
    pub tg: bool,
}

impl<'a> Ctx<'a> {
    /// The constraints `c` on a map whose own levels decide the
    /// tongue-and-groove nesting.
    pub fn new(levels: &'a LevelMap, c: LeafConstraints) -> Self {
        Self {
            n_rows: levels.n_rows(),
            n_cols: levels.n_cols(),
            reference: levels.levels(),
            icc: !c.interdigitation,
            tg: c.tongue_and_groove,
        }
    }
}

/// Uncover (`tr`) and cover (`tl`) times of every bixel, row-major.
#[derive(Default)]
pub(crate) struct Schedule {
    pub tr: Vec<f64>,
    pub tl: Vec<f64>,
}

fn raise(x: &mut f64, v: f64) -> bool {
    if v > *x + 1e-9 * (1.0 + v.abs()) {
        *x = v;
        true
    } else {
        false
    }
}

fn relax(ctx: &Ctx, res: &[i64], tr: &mut [f64], i: usize, j: usize) -> bool {
    let n = ctx.n_cols;
    let (a, b) = (i * n + j, (i + 1) * n + j);
    let (ra, rb) = (res[a] as f64, res[b] as f64);
    let mut changed = false;
    if ctx.icc {
        // tr[b] <= tl[a] = tr[a] + ra, and tr[a] <= tl[b].
        let (ta, tb) = (tr[a], tr[b]);
        changed |= raise(&mut tr[a], tb - ra);
        changed |= raise(&mut tr[b], ta - rb);
    }
    if ctx.tg {
        let (aa, ab) = (ctx.reference[a], ctx.reference[b]);
        if aa <= ab && res[a] > 0 {
            // window a inside window b: tr[a] >= tr[b], tl[b] >= tl[a].
            let tb = tr[b];
            changed |= raise(&mut tr[a], tb);
            let ta = tr[a];
            changed |= raise(&mut tr[b], ta + ra - rb);
        }
        if ab <= aa && res[b] > 0 {
            let ta = tr[a];
            changed |= raise(&mut tr[b], ta);
            let tb = tr[b];
            changed |= raise(&mut tr[a], tb + rb - ra);
        }
    }
    changed
}

/// The least unidirectional schedule of the residual `res` (levels).
pub(crate) fn schedule(ctx: &Ctx, res: &[i64], tau: f64) -> Schedule {
    let mut s = Schedule {
        tr: Vec::new(),
        tl: Vec::new(),
    };
    schedule_into(ctx, res, tau, &mut s);
    s
}

/// [`schedule`] into the buffers of `s` (resized, no allocation once they
/// are large enough).
pub(crate) fn schedule_into(ctx: &Ctx, res: &[i64], tau: f64, s: &mut Schedule) {
    let (m, n) = (ctx.n_rows, ctx.n_cols);
    let Schedule { tr, tl } = s;
    tr.clear();
    tr.resize(m * n, 0.0);
    tl.clear();
    tl.resize(m * n, 0.0);
    for j in 0..n {
        for i in 0..m {
            let k = i * n + j;
            tr[k] = if j == 0 {
                0.5 * tau
            } else {
                (tr[k - 1] + tau).max(tl[k - 1] + tau - res[k] as f64)
            };
        }
        if m > 1 && (ctx.icc || ctx.tg) {
            let mut passes = 0;
            loop {
                let mut changed = false;
                for i in 0..m - 1 {
                    changed |= relax(ctx, res, tr, i, j);
                }
                for i in (0..m - 1).rev() {
                    changed |= relax(ctx, res, tr, i, j);
                }
                if !changed {
                    break;
                }
                passes += 1;
                assert!(
                    passes <= m + 4,
                    "leaf schedule did not converge: the residual is not ordered like the \
                     reference map (a bug in dosepaint-mlc)"
                );
            }
        }
        for i in 0..m {
            let k = i * n + j;
            tl[k] = tr[k] + res[k] as f64;
        }
    }
}

/// Time of the last exposure (levels): max `tl` over bixels with fluence.
pub(crate) fn makespan(s: &Schedule, res: &[i64]) -> f64 {
    s.tl.iter()
        .zip(res)
        .filter(|&(_, &r)| r > 0)
        .map(|(&t, _)| t)
        .fold(0.0, f64::max)
}

/// The total beam-on time (levels) of the least step-and-shoot schedule.
pub(crate) fn sweep_time(ctx: &Ctx, res: &[i64]) -> i64 {
    let s = schedule(ctx, res, 0.0);
    makespan(&s, res).round() as i64
}

/// The aperture exposed during unit `u` (1-based) of an integer schedule.
fn aperture_at(ctx: &Ctx, s: &Schedule, u: f64) -> Segment {
    let n = ctx.n_cols;
    let mut seg = Segment {
        left: Vec::with_capacity(ctx.n_rows),
        right: Vec::with_capacity(ctx.n_rows),
        weight: 0,
    };
    for i in 0..ctx.n_rows {
        let row = i * n..(i + 1) * n;
        // tl, tr are non-decreasing along the row: counts are partition points.
        seg.left.push(s.tl[row.clone()].partition_point(|&t| t < u));
        seg.right.push(s.tr[row].partition_point(|&t| t < u));
    }
    seg
}

/// Step-and-shoot segments of the least schedule of `res`, in delivery
/// order; with `first_only`, only the first segment that exposes something.
pub(crate) fn sweep_segments(ctx: &Ctx, res: &[i64], first_only: bool) -> Vec<Segment> {
    let s = schedule(ctx, res, 0.0);
    let t_end = makespan(&s, res).round() as i64;
    let mut bps: Vec<i64> =
        s.tr.iter()
            .chain(&s.tl)
            .map(|&t| t.round() as i64)
            .filter(|&t| t > 0 && t < t_end)
            .collect();
    bps.push(0);
    bps.push(t_end);
    bps.sort_unstable();
    bps.dedup();
    let mut segs = Vec::new();
    for w in bps.windows(2) {
        let mut seg = aperture_at(ctx, &s, (w[0] + 1) as f64);
        if seg.is_closed() {
            continue;
        }
        seg.weight = (w[1] - w[0]) as u32;
        segs.push(seg);
        if first_only {
            break;
        }
    }
    segs
}

/// A sliding-window trajectory: control-point times (levels of beam-on
/// time) and leaf positions in bixel-edge units (fractional), per control
/// point and row.
pub(crate) struct Trajectory {
    pub times: Vec<f64>,
    pub left: Vec<Vec<f64>>,
    pub right: Vec<Vec<f64>>,
}

/// Position (edge units) at time `t` of a leaf crossing bixel j during
/// `[c_j - tau/2, c_j + tau/2]`.
fn leaf_position(centres: &[f64], tau: f64, t: f64) -> f64 {
    let done = centres.partition_point(|&c| c + 0.5 * tau <= t);
    if done < centres.len() {
        let start = centres[done] - 0.5 * tau;
        if t > start {
            return done as f64 + ((t - start) / tau).min(1.0);
        }
    }
    done as f64
}

/// The sliding-window trajectory of `res` with a bixel crossing time `tau`
/// (> 0): every leaf starts at the left field edge and ends at the right one.
pub(crate) fn sliding_window(ctx: &Ctx, res: &[i64], tau: f64) -> Trajectory {
    let (m, n) = (ctx.n_rows, ctx.n_cols);
    let s = schedule(ctx, res, tau);
    let t_end = s.tl.iter().chain(&s.tr).fold(0.0f64, |a, &t| a.max(t)) + 0.5 * tau;
    let mut times: Vec<f64> = vec![0.0, t_end];
    for &c in s.tr.iter().chain(&s.tl) {
        times.push(c - 0.5 * tau);
        times.push(c + 0.5 * tau);
    }
    times.sort_by(f64::total_cmp);
    let tol = 1e-9 * t_end.max(1.0);
    let mut uniq: Vec<f64> = Vec::with_capacity(times.len());
    for t in times {
        let t = t.clamp(0.0, t_end);
        match uniq.last() {
            Some(&last) if t - last <= tol => {}
            _ => uniq.push(t),
        }
    }
    if let Some(last) = uniq.last_mut() {
        *last = t_end;
    }
    let mut left = Vec::with_capacity(uniq.len());
    let mut right = Vec::with_capacity(uniq.len());
    for &t in &uniq {
        let mut l = Vec::with_capacity(m);
        let mut r = Vec::with_capacity(m);
        for i in 0..m {
            let row = i * n..(i + 1) * n;
            l.push(leaf_position(&s.tl[row.clone()], tau, t));
            r.push(leaf_position(&s.tr[row], tau, t));
        }
        left.push(l);
        right.push(r);
    }
    Trajectory {
        times: uniq,
        left,
        right,
    }
}
