//! Engel (2005): decomposition with minimum total monitor units and few
//! segments.
//!
//! With `c(R) = max_i c_i(R)` the complexity (lower bound) of the residual,
//! each step subtracts `u * S` where the segment `S` keeps the decomposition
//! optimal: `c(R - u S) = c(R) - u`. Subtracting `u` on columns `l..r` of
//! row i changes its complexity by `h_r(u) - g_l(u)`, where
//! `g_l(u) = min(u, (R[l] - R[l-1])^+)` (the rise at `l` that is used up) and
//! `h_r(u) = (u - (R[r-1] - R[r])^+)^+` (the rise created at `r`). The row is
//! admissible when `c_i - g + h <= c - u` (closed: when `c_i <= c - u`).
//! Engel takes the largest `u` for which every row has an admissible choice;
//! the segment is chosen row by row to leave the residual as simple as
//! possible (see [`row_score`]).

use crate::constrained::{Cand, choose};
use crate::params::{ConstrainedSearch, Parking};
use crate::schedule::{Ctx, sweep_segments, sweep_time};
use crate::segment::{Segment, place_closed};
use crate::windows::WindowSearch;

#[inline]
fn g_at(row: &[i64], l: usize, u: i64) -> i64 {
    let prev = if l == 0 { 0 } else { row[l - 1] };
    u.min((row[l] - prev).max(0))
}

#[inline]
fn h_at(row: &[i64], r: usize, u: i64) -> i64 {
    let next = if r == row.len() { 0 } else { row[r] };
    (u - (row[r - 1] - next).max(0)).max(0)
}

fn complexity(row: &[i64]) -> i64 {
    let mut prev = 0;
    let mut c = 0;
    for &v in row {
        c += (v - prev).max(0);
        prev = v;
    }
    c
}

/// Whether the row has an admissible choice for weight `u` when its
/// complexity may grow by at most `budget` (which may be negative).
fn row_feasible(row: &[i64], u: i64, budget: i64) -> bool {
    if budget >= 0 {
        return true;
    }
    let need = -budget;
    let n = row.len();
    let mut j = 0;
    while j < n {
        if row[j] < u {
            j += 1;
            continue;
        }
        let s = j;
        while j < n && row[j] >= u {
            j += 1;
        }
        let mut best_neg_h = i64::MIN / 2;
        for l in (s..j).rev() {
            best_neg_h = best_neg_h.max(-h_at(row, l + 1, u));
            if g_at(row, l, u) + best_neg_h >= need {
                return true;
            }
        }
    }
    false
}

/// Score of exposing columns `l..r` of `row` with weight `u` (higher is
/// better): the complexity removed from the row, then the number of level
/// steps (jumps) removed, then the dose removed.
pub(crate) fn row_score(row: &[i64], l: usize, r: usize, u: i64) -> f64 {
    let red = g_at(row, l, u) - h_at(row, r, u);
    // A jump disappears at l when R[l] - R[l-1] == u, at r when R[r-1] - R[r] == u.
    let prev = if l == 0 { 0 } else { row[l - 1] };
    let next = if r == row.len() { 0 } else { row[r] };
    let mut jumps = 0;
    if row[l] - prev == u {
        jumps += 1;
    } else if row[l] == prev {
        jumps -= 1;
    }
    if row[r - 1] - next == u {
        jumps += 1;
    } else if row[r - 1] == next {
        jumps -= 1;
    }
    red as f64 * 1e4 + f64::from(jumps) * 1e2 + (u * (r - l) as i64) as f64 * 1e-2
}

/// Admissible candidates of a row for weight `u` and complexity budget,
/// best first, at most `keep` (closed included when admissible).
fn row_candidates(row: &[i64], u: i64, budget: i64, keep: usize) -> Vec<Cand> {
    let n = row.len();
    let mut out = Vec::new();
    if budget >= 0 {
        out.push(Cand {
            l: 0,
            r: 0,
            score: 0.0,
        });
    }
    for l in 0..n {
        if row[l] < u {
            continue;
        }
        let g = g_at(row, l, u);
        for r in l + 1..=n {
            if row[r - 1] < u {
                break;
            }
            if h_at(row, r, u) - g <= budget {
                out.push(Cand {
                    l,
                    r,
                    score: row_score(row, l, r, u),
                });
            }
        }
    }
    let by_score = |a: &Cand, b: &Cand| b.score.total_cmp(&a.score);
    if out.len() > keep && keep > 0 {
        out.select_nth_unstable_by(keep - 1, by_score);
        out.truncate(keep);
    }
    out.sort_by(by_score);
    out
}

/// Unconstrained Engel: total MU equals the lower bound.
fn engel_free(n_rows: usize, n_cols: usize, levels: &[u32], parking: Parking) -> Vec<Segment> {
    let (m, n) = (n_rows, n_cols);
    let mut res: Vec<i64> = levels.iter().map(|&l| i64::from(l)).collect();
    let mut crow: Vec<i64> = (0..m)
        .map(|i| complexity(&res[i * n..(i + 1) * n]))
        .collect();
    let mut c = crow.iter().copied().max().unwrap_or(0);
    let mut segs = Vec::new();
    while c > 0 {
        let rmax = res.iter().copied().max().unwrap_or(0);
        let mut u = c.min(rmax);
        while u > 1 && !(0..m).all(|i| row_feasible(&res[i * n..(i + 1) * n], u, c - u - crow[i])) {
            u -= 1;
        }
        let mut seg = Segment {
            left: vec![0; m],
            right: vec![0; m],
            weight: u as u32,
        };
        for i in 0..m {
            let row = &mut res[i * n..(i + 1) * n];
            let best = row_candidates(row, u, c - u - crow[i], 1)
                .pop()
                .expect("u = 1 is always admissible");
            if best.l < best.r {
                crow[i] += h_at(row, best.r, u) - g_at(row, best.l, u);
                for v in &mut row[best.l..best.r] {
                    *v -= u;
                }
                seg.left[i] = best.l;
                seg.right[i] = best.r;
            }
        }
        c -= u;
        debug_assert_eq!(c, crow.iter().copied().max().unwrap_or(0));
        place_closed(&mut seg, n, parking, false);
        segs.push(seg);
    }
    segs
}

/// Candidates kept per row for the joint choice under interleaf constraints.
const KEEP: usize = 10;

/// Work budget of the joint interval choices of one map (for the time per
/// map): at most `tries` weights per step until `per_map` joint choices
/// have been made, then at most `tries_after`.
struct Budget {
    tries: usize,
    per_map: usize,
    tries_after: usize,
}

/// [`ConstrainedSearch::Fast`]: the joint choice is the main search.
const FAST: Budget = Budget {
    tries: 8,
    per_map: 120,
    tries_after: 2,
};

/// [`ConstrainedSearch::Windows`]: the joint choice only tries weights
/// above the schedule-window segment's.
const WINDOWS: Budget = Budget {
    tries: 2,
    per_map: 60,
    tries_after: 0,
};

/// Engel under interleaf constraints: the total MU is held at the minimum
/// of unidirectional constrained schedules (the constrained sweep), each
/// step requiring `T(R - u S) <= T(R) - u`.
///
/// [`ConstrainedSearch::Fast`]: the rows' admissible intervals are chosen
/// jointly ([`choose`]) for the largest feasible weights, at most
/// [`FAST`]`.tries` per step (`tries_after` once the map's budget is
/// spent); a step that finds no admissible segment delivers the first
/// segment of the constrained sweep of the residual.
///
/// [`ConstrainedSearch::Windows`]: each step first finds the segment of
/// the largest weight `u_w` among cuts of the least schedule's windows
/// ([`WindowSearch`]), which satisfies the condition by construction; the
/// joint interval choice then tries only weights above `u_w` (budget
/// [`WINDOWS`]), and the window segment is delivered if none of them is
/// admissible.
///
/// The budgets only decide how hard a step searches; every delivered
/// segment satisfies the same condition, so exactness, constraints and the
/// MU guarantee do not depend on them.
fn engel_constrained(
    ctx: &Ctx,
    levels: &[u32],
    parking: Parking,
    search: ConstrainedSearch,
) -> Vec<Segment> {
    let (m, n) = (ctx.n_rows, ctx.n_cols);
    let mut res: Vec<i64> = levels.iter().map(|&l| i64::from(l)).collect();
    let mut windows = (search == ConstrainedSearch::Windows).then(WindowSearch::default);
    let mut t = match windows.as_mut() {
        Some(w) => w.load(ctx, &res),
        None => sweep_time(ctx, &res),
    };
    let budget = if windows.is_some() { &WINDOWS } else { &FAST };
    let mut segs = Vec::new();
    let mut spent = 0usize;
    // Per-step buffers: row complexities, and the residual after the step.
    let mut crow = vec![0i64; m];
    let mut next = res.clone();
    while t > 0 {
        let tries_max = if spent >= budget.per_map {
            budget.tries_after
        } else {
            budget.tries
        };
        let win_seg = windows.as_mut().map(|w| w.segment(ctx, &res));
        let u_min = win_seg.as_ref().map_or(0, |s| i64::from(s.weight));
        for (i, c) in crow.iter_mut().enumerate() {
            *c = complexity(&res[i * n..(i + 1) * n]);
        }
        let rmax = res.iter().copied().max().unwrap_or(0);
        let mut accepted = None;
        let mut tries = 0;
        for u in (u_min + 1..=t.min(rmax)).rev() {
            if tries == tries_max {
                break;
            }
            if !(0..m).all(|i| row_feasible(&res[i * n..(i + 1) * n], u, t - u - crow[i])) {
                continue;
            }
            tries += 1;
            spent += 1;
            let cands: Vec<Vec<Cand>> = (0..m)
                .map(|i| row_candidates(&res[i * n..(i + 1) * n], u, t - u - crow[i], KEEP))
                .collect();
            let Some(pick) = choose(ctx, &res, u, &cands) else {
                continue;
            };
            let mut seg = Segment {
                left: vec![0; m],
                right: vec![0; m],
                weight: u as u32,
            };
            for (i, &k) in pick.iter().enumerate() {
                seg.left[i] = cands[i][k].l;
                seg.right[i] = cands[i][k].r;
            }
            if seg.is_closed() {
                continue;
            }
            subtract(&mut next, &res, &seg, n);
            let t_next = sweep_time(ctx, &next);
            if t_next <= t - u {
                accepted = Some((seg, t_next));
                break;
            }
        }
        let (mut seg, t_next) = if let Some(a) = accepted {
            a
        } else {
            let seg = win_seg.unwrap_or_else(|| {
                sweep_segments(ctx, &res, true)
                    .pop()
                    .expect("a non-zero residual has a first sweep segment")
            });
            subtract(&mut next, &res, &seg, n);
            // With windows the next load computes the time.
            let t_next = if windows.is_some() {
                0
            } else {
                sweep_time(ctx, &next)
            };
            (seg, t_next)
        };
        place_closed(&mut seg, n, parking, ctx.icc);
        std::mem::swap(&mut res, &mut next);
        let t_next = match windows.as_mut() {
            Some(w) => w.load(ctx, &res),
            None => t_next,
        };
        debug_assert!(
            t_next <= t - i64::from(seg.weight),
            "T(R - uS) = {t_next} > T(R) - u = {} - {}",
            t,
            seg.weight
        );
        segs.push(seg);
        t = t_next;
    }
    segs
}

/// `next = res - weight * seg` (open columns of each row), without
/// allocating.
fn subtract(next: &mut [i64], res: &[i64], seg: &Segment, n: usize) {
    next.copy_from_slice(res);
    let u = i64::from(seg.weight);
    for (i, (&l, &r)) in seg.left.iter().zip(&seg.right).enumerate() {
        for v in &mut next[i * n + l..i * n + r.max(l)] {
            *v -= u;
        }
    }
}

pub(crate) fn engel(
    ctx: &Ctx,
    levels: &[u32],
    parking: Parking,
    search: ConstrainedSearch,
) -> Vec<Segment> {
    if ctx.icc || ctx.tg {
        engel_constrained(ctx, levels, parking, search)
    } else {
        engel_free(ctx.n_rows, ctx.n_cols, levels, parking)
    }
}
