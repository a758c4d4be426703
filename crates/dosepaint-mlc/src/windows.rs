//! Engel's step under interleaf constraints by *schedule windows*.
//!
//! Let `(tr, tl)` be the least unidirectional schedule of the residual `R`
//! (module `schedule`), with makespan `T(R)`. In row `i` the leaf positions
//! only change at the row's breakpoints (its values of `tr` and `tl`);
//! between two consecutive ones, `[a, b)`, the row shows the constant
//! aperture `l..r` with `l = #{tl <= a}`, `r = #{tr <= a}` (`l == r`: closed,
//! both leaves at edge `l`). A *cut* of row `i` at time `tau`, with
//! `[tau, tau + u]` inside one window, removes the time slice
//! `[tau, tau + u)` from the row: `x -> x` for `x <= tau`, `x -> x - u` for
//! `x >= tau + u` (no breakpoint lies in between). The cut row delivers
//! `R_i - u S_i`, `S_i` the window's aperture, and ends by `T(R) - u`.
//!
//! Rows cut at *different* times must still form a feasible schedule of
//! `R - u S`; then `T(R - u S) <= T(R) - u` by construction, the condition
//! that keeps the total monitor units at most the constrained sweep's. Every
//! interleaf condition between adjacent rows `a` (above) and `b` is a
//! difference constraint `f_b(p) <= f_a(q)` between a breakpoint `p` of one
//! row and `q >= p` of the other, and it can only break when `q` is shifted,
//! `p` is not and `q - p < u`: a forbidden quadrant
//! `{tau_of_q <= q - u, tau_of_p >= p}`. So for a cut time `tau_a` of row `a`
//! the admissible cut times of row `b` form an interval whose ends only grow
//! with `tau_a`. The segment itself must satisfy the constraints as well:
//! no interdigitation (consecutive open rows overlap or touch, closed rows
//! between them are parked inside both) and tongue-and-groove
//! synchronisation (a bixel whose reference intensity is not larger than
//! its vertical neighbour's is exposed only together with it; an interval
//! of cut times of the neighbour).
//!
//! A breakpoint of row `a` is shifted by a cut in window `[s, e)` exactly
//! when it is `>= e`, whatever `tau` in `[s, e - u]`; so compatibility is a
//! property of the chosen *windows*, and each window offers one cut, at its
//! start. For a weight `u` every row offers its windows of length `>= u`;
//! a dynamic program over the rows picks one per row, adjacent picks
//! compatible, maximising the sum of [`row_score`]. A choice that works for
//! `u` works for every smaller weight (longer windows, and a constraint
//! binds only when `q - p < u`), so the largest weight is found exactly by
//! galloping from the previous step's weight and bisection. Weight 1
//! always has a choice: every row cut at time 0, a time slice of the least
//! schedule.

use crate::engel::row_score;
use crate::schedule::{Ctx, Schedule, makespan, schedule_into};
use crate::segment::Segment;

/// A window of one row: times `[a, b)`, aperture `l..r`, and the bounds
/// (inclusive) that tongue-and-groove synchronisation of its aperture puts
/// on the cut times of the neighbouring rows: `dn_*` on the row below,
/// `up_*` on the row above.
#[derive(Debug, Clone, Copy)]
struct Win {
    a: i64,
    b: i64,
    l: usize,
    r: usize,
    dn_lo: i64,
    dn_hi: i64,
    up_lo: i64,
    up_hi: i64,
}

/// A cut of one row at the start of window `win` (where in its window a
/// row is cut does not matter, see [`Work::pair_bounds`]), with the
/// window's bounds on the row above.
#[derive(Debug, Clone, Copy)]
struct Cut {
    win: usize,
    score: f64,
    up_lo: i64,
    up_hi: i64,
}

/// Weight-independent data of one column of a pair of adjacent rows `a`
/// (above) and `b`: the constraint families of the module docs, each a gap
/// (the constraint binds when `gap < u`, `i64::MAX`: never) and a value.
/// `h_*`: "`tau_a <= x_a - u`  =>  `tau_b <= v`" with `x_a` the row's `tl`
/// (`h_tl*`) or `tr` (`h_tr`); `l_*`: "`tau_a >= x_a`  =>
/// `tau_b >= v - u`".
#[derive(Debug, Clone, Copy)]
struct PairCol {
    h_tl: [(i64, i64); 2],
    h_tr: (i64, i64),
    l_tr: [(i64, i64); 2],
    l_tl: (i64, i64),
}

const FREE: (i64, i64) = (i64::MAX, 0);

/// A state of the dynamic program: a cut (index into `Work::cut`), the
/// aperture of the last open row so far ([`NO_ROW`]: none, or no
/// interdigitation constraint), the best score, and the state it came from.
#[derive(Debug, Clone, Copy)]
struct State {
    cut: usize,
    last: (usize, usize),
    score: f64,
    back: usize,
}

const NO_ROW: (usize, usize) = (usize::MAX, usize::MAX);

/// The pick of one row for the best weight found.
#[derive(Debug, Clone, Copy, Default)]
struct Pick {
    l: usize,
    r: usize,
}

/// Buffers reused across steps and weights (no allocation in the search
/// once they have grown to the map's size).
#[derive(Default)]
struct Work {
    /// The least schedule of the residual as computed (times in levels).
    sched: Schedule,
    /// Integer least schedule of the residual, row-major.
    tr: Vec<i64>,
    tl: Vec<i64>,
    /// Windows of all rows, row `i` at `win_at[i]..win_at[i + 1]`.
    win: Vec<Win>,
    win_at: Vec<usize>,
    /// Longest window per row.
    win_max: Vec<i64>,
    /// Pair data, pair `(i, i + 1)` at `i * n..(i + 1) * n`.
    pair: Vec<PairCol>,
    /// Per pair, the smallest gap of each family (`h_tl`, `l_tr`, `h_tr`,
    /// `l_tl`): a family with no gap below `u` binds nothing.
    pair_gap: Vec<[i64; 4]>,
    /// Cuts for the current weight, row `i` at `cut_at[i]..cut_at[i + 1]`,
    /// sorted by `tau` within a row; `taus` the same times.
    cut: Vec<Cut>,
    taus: Vec<i64>,
    cut_at: Vec<usize>,
    /// DP states of all rows, row `i` from `state_at[i]`; per cut of the
    /// current row the state of an open cut, and the closed cuts' states.
    states: Vec<State>,
    state_at: Vec<usize>,
    slot: Vec<usize>,
    closed: Vec<usize>,
    cslot: Vec<(u64, usize)>,
    stamp: u64,
    /// Bounds on the cut time of row b for each cut of row a.
    lo: Vec<i64>,
    hi: Vec<i64>,
    /// Per-column scratch: extrema of a constraint family.
    ext: Vec<i64>,
    /// First masked column `>= j`, last masked column `< j`.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The picks of the best weight so far, and of the current attempt.
    pick: Vec<Pick>,
    cand_pick: Vec<Pick>,
}

const NONE: usize = usize::MAX;

/// `next[j]`: first column `>= j` with `mask`, `n` if none; `prev[j]`: last
/// column `< j` with `mask`, [`NONE`] if none.
fn masks(next: &mut Vec<usize>, prev: &mut Vec<usize>, n: usize, mask: impl Fn(usize) -> bool) {
    next.clear();
    next.resize(n + 1, n);
    prev.clear();
    prev.resize(n + 1, NONE);
    for j in (0..n).rev() {
        next[j] = if mask(j) { j } else { next[j + 1] };
    }
    for j in 0..n {
        prev[j + 1] = if mask(j) { j } else { prev[j] };
    }
}

impl Work {
    /// Least schedule of `res`, its windows and the pair data; returns the
    /// makespan.
    fn load(&mut self, ctx: &Ctx, res: &[i64]) -> i64 {
        let (m, n) = (ctx.n_rows, ctx.n_cols);
        schedule_into(ctx, res, 0.0, &mut self.sched);
        let s = &self.sched;
        let t = makespan(s, res).round() as i64;
        self.tr.clear();
        self.tr.extend(s.tr.iter().map(|&x| x.round() as i64));
        self.tl.clear();
        self.tl.extend(s.tl.iter().map(|&x| x.round() as i64));
        self.win.clear();
        self.win_at.clear();
        self.win_max.clear();
        for i in 0..m {
            self.win_at.push(self.win.len());
            let (tr, tl) = (&self.tr[i * n..(i + 1) * n], &self.tl[i * n..(i + 1) * n]);
            // Merge the two non-decreasing time lists: at each breakpoint
            // `a`, `l` left and `r` right leaves have passed.
            let (mut l, mut r) = (0, 0);
            let mut a = 0;
            let mut longest = 0;
            loop {
                while l < n && tl[l] <= a {
                    l += 1;
                }
                while r < n && tr[r] <= a {
                    r += 1;
                }
                let next_tl = if l < n { tl[l] } else { t };
                let next_tr = if r < n { tr[r] } else { t };
                let b = next_tl.min(next_tr).min(t);
                if b <= a {
                    break;
                }
                self.win.push(Win {
                    a,
                    b,
                    l,
                    r,
                    dn_lo: i64::MIN,
                    dn_hi: i64::MAX,
                    up_lo: i64::MIN,
                    up_hi: i64::MAX,
                });
                longest = longest.max(b - a);
                a = b;
            }
            self.win_max.push(longest);
        }
        self.win_at.push(self.win.len());
        self.load_pairs(ctx, res);
        t
    }

    /// The weight-independent pair data and window bounds.
    fn load_pairs(&mut self, ctx: &Ctx, res: &[i64]) {
        let (m, n) = (ctx.n_rows, ctx.n_cols);
        let (tr, tl, rf) = (&self.tr, &self.tl, ctx.reference);
        self.pair.clear();
        self.pair_gap.clear();
        for ia in 0..m.saturating_sub(1) {
            let (oa, ob) = (ia * n, (ia + 1) * n);
            let mut gaps = [i64::MAX; 4];
            for j in 0..n {
                let (a, b) = (oa + j, ob + j);
                // a's bixel tied to b's (its window nested in b's) and
                // vice versa, where it has fluence.
                let a_in_b = ctx.tg && rf[a] <= rf[b] && res[a] > 0;
                let b_in_a = ctx.tg && rf[b] <= rf[a] && res[b] > 0;
                let mut c = PairCol {
                    h_tl: [FREE; 2],
                    h_tr: FREE,
                    l_tr: [FREE; 2],
                    l_tl: FREE,
                };
                if ctx.icc {
                    // tr_b <= tl_a and tr_a <= tl_b.
                    c.h_tl[0] = (tl[a] - tr[b], tr[b] - 1);
                    c.l_tr[0] = (tl[b] - tr[a], tl[b] + 1);
                }
                if b_in_a {
                    // tl_b <= tl_a and tr_a <= tr_b.
                    c.h_tl[1] = (tl[a] - tl[b], tl[b] - 1);
                    c.l_tr[1] = (tr[b] - tr[a], tr[b] + 1);
                }
                if a_in_b {
                    // tr_b <= tr_a and tl_a <= tl_b.
                    c.h_tr = (tr[a] - tr[b], tr[b] - 1);
                    c.l_tl = (tl[b] - tl[a], tl[b] + 1);
                }
                gaps[0] = gaps[0].min(c.h_tl[0].0).min(c.h_tl[1].0);
                gaps[1] = gaps[1].min(c.l_tr[0].0).min(c.l_tr[1].0);
                gaps[2] = gaps[2].min(c.h_tr.0);
                gaps[3] = gaps[3].min(c.l_tl.0);
                self.pair.push(c);
            }
            self.pair_gap.push(gaps);
        }
        if !ctx.tg {
            return;
        }
        // Synchronisation bounds of the segment itself, per window.
        for i in 0..m {
            let ws = self.win_at[i]..self.win_at[i + 1];
            if i + 1 < m {
                // Row i above row i + 1.
                let (oa, ob) = (i * n, (i + 1) * n);
                masks(&mut self.next, &mut self.prev, n, |j| {
                    rf[oa + j] <= rf[ob + j]
                });
                for w in &mut self.win[ws.clone()] {
                    let first = self.next[w.l];
                    if first < w.r {
                        // Columns exposed in a and tied to b open in b.
                        w.dn_lo = w.dn_lo.max(tr[ob + self.prev[w.r]]);
                        w.dn_hi = w.dn_hi.min(tl[ob + first] - 1);
                    }
                }
            }
            if i > 0 {
                // Row i below row i - 1.
                let (oa, ob) = ((i - 1) * n, i * n);
                masks(&mut self.next, &mut self.prev, n, |j| {
                    rf[ob + j] <= rf[oa + j]
                });
                for w in &mut self.win[ws] {
                    let first = self.next[w.l];
                    if first < w.r {
                        w.up_lo = tr[oa + self.prev[w.r]];
                        w.up_hi = tl[oa + first] - 1;
                    }
                }
            }
        }
    }

    /// The cuts of every row for weight `u`; `false` if a row has none.
    fn cuts(&mut self, res: &[i64], n: usize, u: i64) -> bool {
        let m = self.win_at.len() - 1;
        self.cut.clear();
        self.taus.clear();
        self.cut_at.clear();
        for i in 0..m {
            self.cut_at.push(self.cut.len());
            let row = &res[i * n..(i + 1) * n];
            for k in self.win_at[i]..self.win_at[i + 1] {
                let w = self.win[k];
                if w.b - w.a < u {
                    continue;
                }
                let score = if w.l < w.r {
                    row_score(row, w.l, w.r, u)
                } else {
                    0.0
                };
                self.cut.push(Cut {
                    win: k,
                    score,
                    up_lo: w.up_lo,
                    up_hi: w.up_hi,
                });
                self.taus.push(w.a);
            }
            if self.cut_at[i] == self.cut.len() {
                return false;
            }
        }
        self.cut_at.push(self.cut.len());
        true
    }

    /// Bounds `lo/hi` per cut of row `ib - 1` on the cut time of row `ib`
    /// for weight `u`, from the constraint families of the pair; the
    /// segment's own bounds come with the windows.
    ///
    /// A breakpoint `x` of row a is shifted by the cut (`x >= tau_a + u`)
    /// exactly when it is at or after the window's end, so the columns whose
    /// `tl_a` (`tr_a`) is shifted are those from the window's `l` (`r`) on:
    /// each family is a suffix minimum or prefix maximum over the columns,
    /// read at `l` or `r`.
    fn pair_bounds(&mut self, ctx: &Ctx, u: i64, ib: usize) {
        let n = ctx.n_cols;
        let oa = (ib - 1) * n;
        let cuts_a = &self.cut[self.cut_at[ib - 1]..self.cut_at[ib]];
        let pc = &self.pair[oa..oa + n];
        self.lo.clear();
        self.hi.clear();
        for c in cuts_a {
            let w = &self.win[c.win];
            self.lo.push(w.dn_lo);
            self.hi.push(w.dn_hi);
        }
        let gaps = self.pair_gap[ib - 1];
        let bind_h = |(g, v): (i64, i64)| if g < u { v } else { i64::MAX };
        let bind_l = |(g, v): (i64, i64)| if g < u { v - u } else { i64::MIN };
        let ext = &mut self.ext;
        let win = &self.win;
        // tl_a shifted (columns l..): tau_b <= v.
        if gaps[0] < u {
            suffix_min(ext, pc, |c| bind_h(c.h_tl[0]).min(bind_h(c.h_tl[1])));
            for (h, c) in self.hi.iter_mut().zip(cuts_a) {
                *h = (*h).min(ext[win[c.win].l]);
            }
        }
        // tr_a not shifted (columns ..r): tau_b >= v - u.
        if gaps[1] < u {
            prefix_max(ext, pc, |c| bind_l(c.l_tr[0]).max(bind_l(c.l_tr[1])));
            for (l, c) in self.lo.iter_mut().zip(cuts_a) {
                *l = (*l).max(ext[win[c.win].r]);
            }
        }
        // tr_a shifted (columns r..).
        if gaps[2] < u {
            suffix_min(ext, pc, |c| bind_h(c.h_tr));
            for (h, c) in self.hi.iter_mut().zip(cuts_a) {
                *h = (*h).min(ext[win[c.win].r]);
            }
        }
        // tl_a not shifted (columns ..l).
        if gaps[3] < u {
            prefix_max(ext, pc, |c| bind_l(c.l_tl));
            for (l, c) in self.lo.iter_mut().zip(cuts_a) {
                *l = (*l).max(ext[win[c.win].l]);
            }
        }
    }

    /// The dynamic program for weight `u`: the best compatible choice of
    /// one cut per row, stored in `cand_pick`. `false` if there is none.
    ///
    /// A state is a cut of the current row with, under no interdigitation,
    /// the aperture of the last open row so far: consecutive open rows must
    /// overlap or touch, closed rows in between are parked inside both
    /// later ([`place_closed`](crate::segment::place_closed)).
    fn choose(&mut self, ctx: &Ctx, res: &[i64], u: i64) -> bool {
        let (m, n) = (ctx.n_rows, ctx.n_cols);
        if !self.cuts(res, ctx.n_cols, u) {
            return false;
        }
        self.states.clear();
        self.state_at.clear();
        self.state_at.push(0);
        for k in self.cut_at[0]..self.cut_at[1] {
            let w = &self.win[self.cut[k].win];
            let last = if ctx.icc && w.l < w.r {
                (w.l, w.r)
            } else {
                NO_ROW
            };
            self.states.push(State {
                cut: k,
                last,
                score: self.cut[k].score,
                back: usize::MAX,
            });
        }
        for ib in 1..m {
            self.pair_bounds(ctx, u, ib);
            let (a0, b0, b1) = (self.cut_at[ib - 1], self.cut_at[ib], self.cut_at[ib + 1]);
            let (s0, s1) = (self.state_at[ib - 1], self.states.len());
            self.state_at.push(s1);
            self.slot.clear();
            self.slot.resize(b1 - b0, usize::MAX);
            // Closed cuts of row b, and a dense table of their states by
            // carried aperture (stamped, so it is never cleared).
            self.closed.clear();
            for kb in 0..b1 - b0 {
                let w = &self.win[self.cut[b0 + kb].win];
                if w.l == w.r {
                    self.closed.push(kb);
                }
            }
            let n1 = n + 1;
            let keys = n1 * n1 + 1;
            let need = self.closed.len() * keys;
            if self.cslot.len() < need {
                self.cslot.resize(need, (0, 0));
            }
            self.stamp += 1;
            let stamp = self.stamp;
            let ob = ib * n;
            let mut s = 0;
            for sa in s0..s1 {
                let st = self.states[sa];
                let ka = st.cut - a0;
                let (lo, hi) = (self.lo[ka], self.hi[ka]);
                if lo > hi {
                    continue;
                }
                let tau_a = self.taus[st.cut];
                // Open cuts of b: also overlap the last open row,
                // r_b >= L and l_b <= R, i.e. tr_b[L - 1] <= tau_b < tl_b[R].
                let (mut olo, mut ohi) = (lo, hi);
                if st.last != NO_ROW {
                    let (l, r) = st.last;
                    if l > 0 {
                        olo = olo.max(self.tr[ob + l - 1]);
                    }
                    if r < n {
                        ohi = ohi.min(self.tl[ob + r] - 1);
                    }
                }
                let taus_b = &self.taus[b0..b1];
                // The first cut of b at or after `olo`, by a linear walk
                // from the previous one (the bounds drift slowly).
                while s > 0 && taus_b[s - 1] >= olo {
                    s -= 1;
                }
                while s < taus_b.len() && taus_b[s] < olo {
                    s += 1;
                }
                let mut kb = s;
                while kb < taus_b.len() && taus_b[kb] <= ohi {
                    let cb = self.cut[b0 + kb];
                    let w = &self.win[cb.win];
                    let k = kb;
                    kb += 1;
                    if w.l == w.r || tau_a < cb.up_lo || tau_a > cb.up_hi {
                        continue;
                    }
                    let score = st.score + cb.score;
                    let x = self.slot[k];
                    if x == usize::MAX {
                        self.slot[k] = self.states.len();
                        self.states.push(State {
                            cut: b0 + k,
                            last: if ctx.icc { (w.l, w.r) } else { NO_ROW },
                            score,
                            back: sa,
                        });
                    } else if score > self.states[x].score {
                        self.states[x].score = score;
                        self.states[x].back = sa;
                    }
                }
                // Closed cuts of b carry the last open row on.
                for (ord, &k) in self.closed.iter().enumerate() {
                    let cb = self.cut[b0 + k];
                    let tau_b = self.taus[b0 + k];
                    if tau_b < lo || tau_b > hi || tau_a < cb.up_lo || tau_a > cb.up_hi {
                        continue;
                    }
                    let score = st.score + cb.score;
                    let key = ord * keys
                        + if st.last == NO_ROW {
                            0
                        } else {
                            1 + st.last.0 * n1 + st.last.1
                        };
                    let (st_stamp, x) = self.cslot[key];
                    if st_stamp == stamp {
                        if score > self.states[x].score {
                            self.states[x].score = score;
                            self.states[x].back = sa;
                        }
                    } else {
                        self.cslot[key] = (stamp, self.states.len());
                        self.states.push(State {
                            cut: b0 + k,
                            last: st.last,
                            score,
                            back: sa,
                        });
                    }
                }
            }
            if self.states.len() == s1 {
                return false;
            }
        }
        let s_last = *self.state_at.last().expect("one layer per row");
        let mut best = s_last;
        for x in s_last..self.states.len() {
            if self.states[x].score > self.states[best].score {
                best = x;
            }
        }
        self.cand_pick.clear();
        self.cand_pick.resize(m, Pick::default());
        let mut x = best;
        for i in (0..m).rev() {
            let st = self.states[x];
            let w = &self.win[self.cut[st.cut].win];
            self.cand_pick[i] = Pick { l: w.l, r: w.r };
            x = st.back;
        }
        self.cand_pick.iter().any(|p| p.l < p.r)
    }

    /// The largest weight (by galloping from `start` and bisection) with a
    /// compatible choice; its picks in `pick`. 0 if none was found.
    fn search(&mut self, ctx: &Ctx, res: &[i64], start: i64) -> i64 {
        let umax = self.win_max.iter().copied().min().unwrap_or(0);
        if umax < 1 {
            return 0;
        }
        let attempt = |w: &mut Self, u: i64| {
            let found = w.choose(ctx, res, u);
            if found {
                std::mem::swap(&mut w.pick, &mut w.cand_pick);
            }
            found
        };
        let mut ok = 0; // largest weight known to work
        let mut bad = umax + 1; // a weight known to fail, above `ok`
        let u0 = start.clamp(1, umax);
        if attempt(self, u0) {
            ok = u0;
            while ok + 1 < bad {
                let u = (2 * ok).min(bad - 1);
                if attempt(self, u) {
                    ok = u;
                } else {
                    bad = u;
                    break;
                }
            }
        } else {
            bad = u0;
            let mut u = u0;
            while ok == 0 && u > 1 {
                u /= 2;
                if attempt(self, u) {
                    ok = u;
                } else {
                    bad = u;
                }
            }
        }
        if ok == 0 {
            return 0;
        }
        while bad - ok > 1 {
            let u = ok + (bad - ok) / 2;
            if attempt(self, u) {
                ok = u;
            } else {
                bad = u;
            }
        }
        ok
    }
}

/// `ext[j] = min(val(pc[j..]))` (`i64::MAX` for `j = n`).
fn suffix_min(ext: &mut Vec<i64>, pc: &[PairCol], val: impl Fn(&PairCol) -> i64) {
    let n = pc.len();
    ext.clear();
    ext.resize(n + 1, i64::MAX);
    for j in (0..n).rev() {
        ext[j] = ext[j + 1].min(val(&pc[j]));
    }
}

/// `ext[j] = max(val(pc[..j]))` (`i64::MIN` for `j = 0`).
fn prefix_max(ext: &mut Vec<i64>, pc: &[PairCol], val: impl Fn(&PairCol) -> i64) {
    let n = pc.len();
    ext.clear();
    ext.resize(n + 1, i64::MIN);
    for j in 0..n {
        ext[j + 1] = ext[j].max(val(&pc[j]));
    }
}

/// Engel's step by schedule windows, with buffers kept across steps.
#[derive(Default)]
pub(crate) struct WindowSearch {
    work: Work,
    prev_u: i64,
}

impl WindowSearch {
    /// Loads the least schedule of the residual `res`; returns its total
    /// time `T(R)`.
    pub(crate) fn load(&mut self, ctx: &Ctx, res: &[i64]) -> i64 {
        self.work.load(ctx, res)
    }

    /// The segment of the largest weight found for the loaded residual
    /// (closed rows not yet placed), with `T(R - u S) <= T(R) - u`.
    pub(crate) fn segment(&mut self, ctx: &Ctx, res: &[i64]) -> Segment {
        let u = self.work.search(ctx, res, self.prev_u.max(1));
        assert!(
            u > 0,
            "no cut of weight 1 in the least schedule (a bug in dosepaint-mlc)"
        );
        self.prev_u = u;
        let m = ctx.n_rows;
        let mut seg = Segment {
            left: vec![0; m],
            right: vec![0; m],
            weight: u32::try_from(u).expect("weights are levels"),
        };
        for (i, p) in self.work.pick.iter().enumerate() {
            seg.left[i] = p.l;
            seg.right[i] = p.r;
        }
        seg
    }
}

#[cfg(test)]
mod tests {
    //! The window search against a brute force that cuts the least schedule
    //! in every combination of windows and checks the shifted schedule and
    //! the segment against the constraints directly (not through the pair
    //! bounds and quadrants of the dynamic program).

    use proptest::prelude::*;

    use super::*;
    use crate::schedule::sweep_time;

    /// The score of cutting row `i` in window `ks[i]` (every row) with
    /// weight `u`, if the cut schedule is a feasible schedule of `R - u S`
    /// and the segment `S` itself respects the constraints; `None` if not.
    fn brute_check(ctx: &Ctx, res: &[i64], w: &Work, ks: &[usize], u: i64) -> Option<f64> {
        let (m, n, rf) = (ctx.n_rows, ctx.n_cols, ctx.reference);
        let (mut tr, mut tl, mut next) = (w.tr.clone(), w.tl.clone(), res.to_vec());
        let mut score = 0.0;
        for (i, &k) in ks.iter().enumerate() {
            let win = w.win[k];
            for j in i * n..(i + 1) * n {
                // No breakpoint lies inside the window: those after its
                // start are at or after its end, and move by u.
                for x in [&mut tr[j], &mut tl[j]] {
                    if *x > win.a {
                        assert!(*x >= win.b);
                        *x -= u;
                    }
                }
            }
            for j in win.l..win.r {
                next[i * n + j] -= u;
            }
            if win.l < win.r {
                score += row_score(&res[i * n..(i + 1) * n], win.l, win.r, u);
            }
        }
        for k in 0..m * n {
            assert_eq!(tl[k] - tr[k], next[k], "the cut schedule delivers R - uS");
        }
        let exposed = |i: usize, j: usize| {
            let win = w.win[ks[i]];
            win.l <= j && j < win.r
        };
        for i in 0..m.saturating_sub(1) {
            for j in 0..n {
                let (a, b) = (i * n + j, (i + 1) * n + j);
                if ctx.icc && (tr[b] > tl[a] || tr[a] > tl[b]) {
                    return None;
                }
                if ctx.tg {
                    let nested = |x: usize, y: usize| tr[x] >= tr[y] && tl[x] <= tl[y];
                    if (rf[a] <= rf[b] && res[a] > 0 && !nested(a, b))
                        || (rf[b] <= rf[a] && res[b] > 0 && !nested(b, a))
                        || (rf[a] <= rf[b] && exposed(i, j) && !exposed(i + 1, j))
                        || (rf[b] <= rf[a] && exposed(i + 1, j) && !exposed(i, j))
                    {
                        return None;
                    }
                }
            }
        }
        if ctx.icc {
            let mut last: Option<(usize, usize)> = None;
            for &k in ks {
                let win = w.win[k];
                if win.l < win.r {
                    if let Some((l, r)) = last
                        && (win.l > r || l > win.r)
                    {
                        return None;
                    }
                    last = Some((win.l, win.r));
                }
            }
        }
        Some(score)
    }

    /// The best score of a feasible choice that opens at least one row, for
    /// weight `u`, over every combination of windows of length `>= u`.
    fn brute_best(ctx: &Ctx, res: &[i64], w: &Work, u: i64) -> Option<f64> {
        let m = ctx.n_rows;
        let options: Vec<Vec<usize>> = (0..m)
            .map(|i| {
                (w.win_at[i]..w.win_at[i + 1])
                    .filter(|&k| w.win[k].b - w.win[k].a >= u)
                    .collect()
            })
            .collect();
        if options.iter().any(Vec::is_empty) {
            return None;
        }
        let mut at = vec![0; m];
        let mut best: Option<f64> = None;
        loop {
            let ks: Vec<usize> = (0..m).map(|i| options[i][at[i]]).collect();
            let open = ks.iter().any(|&k| w.win[k].l < w.win[k].r);
            if open
                && let Some(s) = brute_check(ctx, res, w, &ks, u)
                && best.is_none_or(|b| s > b)
            {
                best = Some(s);
            }
            let mut i = 0;
            while i < m && at[i] + 1 == options[i].len() {
                at[i] = 0;
                i += 1;
            }
            if i == m {
                return best;
            }
            at[i] += 1;
        }
    }

    fn case() -> impl Strategy<Value = (usize, usize, Vec<u32>, bool, bool)> {
        (1usize..=4, 1usize..=5, 1u32..=6, 0usize..3).prop_flat_map(|(m, n, lmax, c)| {
            let (icc, tg) = [(true, false), (false, true), (true, true)][c];
            proptest::collection::vec(0..=lmax, m * n).prop_map(move |v| (m, n, v, icc, tg))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// At every step of a whole decomposition: the dynamic program finds
        /// a segment for a weight exactly when the brute force does, with
        /// the brute force's best score (a segment opens at least one row;
        /// the tolerance covers only the order of the sums); a weight
        /// that has a choice has one for every smaller weight, and weight 1
        /// always has one; the search returns the largest such weight from
        /// any start; the segment keeps `T(R - u S) <= T(R) - u`.
        #[test]
        fn window_search_is_exact((m, n, levels, icc, tg) in case()) {
            let ctx = Ctx { n_rows: m, n_cols: n, reference: &levels, icc, tg };
            let mut res: Vec<i64> = levels.iter().map(|&l| i64::from(l)).collect();
            let mut ws = WindowSearch::default();
            let mut t = ws.load(&ctx, &res);
            prop_assert_eq!(t, sweep_time(&ctx, &res));
            while t > 0 {
                let umax = ws.work.win_max.iter().copied().min().unwrap_or(0);
                let mut largest = 0;
                for u in 1..=umax {
                    let brute = brute_best(&ctx, &res, &ws.work, u);
                    let found = ws.work.choose(&ctx, &res, u);
                    prop_assert_eq!(found, brute.is_some(), "u = {}", u);
                    if found {
                        prop_assert_eq!(largest, u - 1, "a choice for u = {} but none below", u);
                        largest = u;
                        let mut score = 0.0;
                        let mut ks = Vec::new();
                        for (i, p) in ws.work.cand_pick.iter().enumerate() {
                            let row = &res[i * n..(i + 1) * n];
                            if p.l < p.r {
                                score += row_score(row, p.l, p.r, u);
                            }
                            let k = (ws.work.win_at[i]..ws.work.win_at[i + 1])
                                .find(|&k| {
                                    let w = ws.work.win[k];
                                    (w.l, w.r) == (p.l, p.r) && w.b - w.a >= u
                                })
                                .expect("a pick is a window of the row");
                            ks.push(k);
                        }
                        prop_assert!(brute_check(&ctx, &res, &ws.work, &ks, u).is_some());
                        let best = brute.unwrap_or(f64::NAN);
                        prop_assert!((score - best).abs() <= 1e-9 * best.abs().max(1.0),
                            "u = {}: dynamic program {} < brute force {}", u, score, best);
                    }
                }
                prop_assert!(largest >= 1, "no choice of weight 1");
                for start in [1, largest, umax] {
                    prop_assert_eq!(ws.work.search(&ctx, &res, start), largest);
                }
                ws.prev_u = largest;
                let seg = ws.segment(&ctx, &res);
                let u = i64::from(seg.weight);
                prop_assert_eq!(u, largest);
                for i in 0..m {
                    for j in seg.left[i]..seg.right[i] {
                        res[i * n + j] -= u;
                        prop_assert!(res[i * n + j] >= 0);
                    }
                }
                let t_next = ws.load(&ctx, &res);
                prop_assert_eq!(t_next, sweep_time(&ctx, &res));
                prop_assert!(t_next <= t - u, "T(R - uS) = {} > T(R) - u = {} - {}", t_next, t, u);
                t = t_next;
            }
            prop_assert!(res.iter().all(|&r| r == 0));
        }
    }
}
