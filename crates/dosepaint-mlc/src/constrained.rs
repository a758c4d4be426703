//! Choosing one interval per row under the interleaf constraints (no
//! interdigitation, tongue-and-groove synchronisation) by dynamic
//! programming over the rows.

use crate::schedule::Ctx;

/// A candidate for one row: the columns `l..r` exposed (`l == r`: closed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub l: usize,
    pub r: usize,
    pub score: f64,
}

impl Cand {
    fn open(&self) -> bool {
        self.l < self.r
    }
}

/// Tongue-and-groove admissibility of the bixels of rows `i` and `i + 1`
/// for a segment of weight `u`: a bixel may be exposed without its vertical
/// neighbour only if it has the larger reference intensity and a residual
/// larger by at least `u` (so the residual stays ordered like the reference
/// map). Stored as prefix counts of the columns where exposing the upper
/// (`up`) or the lower (`dn`) bixel alone is forbidden, so that a pair of
/// candidates is checked in O(1).
struct TgPair {
    up: Vec<u32>,
    dn: Vec<u32>,
}

impl TgPair {
    fn new(ctx: &Ctx, res: &[i64], u: i64, i: usize) -> Self {
        let n = ctx.n_cols;
        let mut up = Vec::with_capacity(n + 1);
        let mut dn = Vec::with_capacity(n + 1);
        up.push(0);
        dn.push(0);
        for j in 0..n {
            let (a, b) = (i * n + j, (i + 1) * n + j);
            let alone =
                |o: usize, s: usize| ctx.reference[o] > ctx.reference[s] && res[o] - res[s] >= u;
            up.push(up[j] + u32::from(!alone(a, b)));
            dn.push(dn[j] + u32::from(!alone(b, a)));
        }
        Self { up, dn }
    }

    /// Forbidden columns of `p` in `lo..hi`.
    fn count(p: &[u32], lo: usize, hi: usize) -> u32 {
        if lo < hi { p[hi] - p[lo] } else { 0 }
    }

    /// Whether `a` (row i) and `b` (row i + 1) are compatible: the columns
    /// exposed in one row only are all allowed alone.
    fn ok(&self, a: &Cand, b: &Cand) -> bool {
        let only = |x: &Cand, y: &Cand, p: &[u32]| {
            if !x.open() {
                return 0;
            }
            if !y.open() {
                return Self::count(p, x.l, x.r);
            }
            Self::count(p, x.l, x.r.min(y.l)) + Self::count(p, x.l.max(y.r), x.r)
        };
        only(a, b, &self.up) == 0 && only(b, a, &self.dn) == 0
    }
}

fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

struct St {
    cand: usize,
    last: Option<(usize, usize)>,
    score: f64,
    back: usize,
}

/// The best-scoring choice of one candidate per row such that consecutive
/// open rows (skipping closed ones) overlap or touch (no interdigitation)
/// and adjacent rows are tongue-and-groove compatible, as enabled in `ctx`.
/// `None` if no row has a candidate or no choice is feasible.
pub(crate) fn choose(ctx: &Ctx, res: &[i64], u: i64, cands: &[Vec<Cand>]) -> Option<Vec<usize>> {
    let m = ctx.n_rows;
    if cands.iter().any(Vec::is_empty) {
        return None;
    }
    // Dense index of the states of a layer by (candidate, last open
    // interval): key 0 is "no open row yet", 1 + l (n + 1) + r otherwise.
    let n1 = ctx.n_cols + 1;
    let n_keys = 1 + n1 * n1;
    let k_max = cands.iter().map(Vec::len).max().unwrap_or(0);
    let mut slot = vec![(usize::MAX, 0usize); k_max * n_keys];
    let mut layers: Vec<Vec<St>> = Vec::with_capacity(m);
    layers.push(
        cands[0]
            .iter()
            .enumerate()
            .map(|(c, k)| St {
                cand: c,
                last: k.open().then_some((k.l, k.r)),
                score: k.score,
                back: usize::MAX,
            })
            .collect(),
    );
    for i in 1..m {
        let tg = ctx.tg.then(|| TgPair::new(ctx, res, u, i - 1));
        let prev = &layers[i - 1];
        let mut cur: Vec<St> = Vec::new();
        for (pi, ps) in prev.iter().enumerate() {
            for (c, k) in cands[i].iter().enumerate() {
                if tg
                    .as_ref()
                    .is_some_and(|t| !t.ok(&cands[i - 1][ps.cand], k))
                {
                    continue;
                }
                if ctx.icc && k.open() && ps.last.is_some_and(|last| !overlap(last, (k.l, k.r))) {
                    continue;
                }
                let last = if k.open() { Some((k.l, k.r)) } else { ps.last };
                let score = ps.score + k.score;
                let key = c * n_keys + last.map_or(0, |(l, r)| 1 + l * n1 + r);
                let (layer, s) = slot[key];
                if layer == i {
                    if score > cur[s].score {
                        cur[s].score = score;
                        cur[s].back = pi;
                    }
                } else {
                    slot[key] = (i, cur.len());
                    cur.push(St {
                        cand: c,
                        last,
                        score,
                        back: pi,
                    });
                }
            }
        }
        if cur.is_empty() {
            return None;
        }
        layers.push(cur);
    }
    let mut best = 0;
    for (s, st) in layers[m - 1].iter().enumerate() {
        if st.score > layers[m - 1][best].score {
            best = s;
        }
    }
    let mut out = vec![0; m];
    let mut s = best;
    for i in (0..m).rev() {
        out[i] = layers[i][s].cand;
        s = layers[i][s].back;
    }
    Some(out)
}
