//! Choosing one interval per row under the interleaf constraints (no
//! interdigitation, tongue-and-groove synchronisation) by dynamic
//! programming over the rows.

use std::collections::HashMap;

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
    fn covers(&self, j: usize) -> bool {
        self.l <= j && j < self.r
    }
}

/// Whether rows `i` and `i + 1` may take candidates `a` and `b` in a segment
/// of weight `u` under tongue-and-groove synchronisation: where one bixel is
/// exposed and its neighbour not, the exposed one must have the larger
/// reference intensity, and its residual must exceed the other's by at least
/// `u` (so the residual stays ordered like the reference map).
fn tg_ok(ctx: &Ctx, res: &[i64], u: i64, i: usize, a: &Cand, b: &Cand) -> bool {
    let n = ctx.n_cols;
    let lo = a.l.min(b.l);
    let hi = a.r.max(b.r);
    for j in lo..hi {
        let (sa, sb) = (a.covers(j), b.covers(j));
        if sa == sb {
            continue;
        }
        let (o, s) = if sa {
            (i * n + j, (i + 1) * n + j)
        } else {
            ((i + 1) * n + j, i * n + j)
        };
        if !(ctx.reference[o] > ctx.reference[s] && res[o] - res[s] >= u) {
            return false;
        }
    }
    true
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
        let compat: Option<Vec<Vec<bool>>> = ctx.tg.then(|| {
            cands[i - 1]
                .iter()
                .map(|a| {
                    cands[i]
                        .iter()
                        .map(|b| tg_ok(ctx, res, u, i - 1, a, b))
                        .collect()
                })
                .collect()
        });
        let prev = &layers[i - 1];
        let mut cur: Vec<St> = Vec::new();
        let mut index: HashMap<(usize, Option<(usize, usize)>), usize> = HashMap::new();
        for (pi, ps) in prev.iter().enumerate() {
            for (c, k) in cands[i].iter().enumerate() {
                if compat.as_ref().is_some_and(|t| !t[ps.cand][c]) {
                    continue;
                }
                if ctx.icc && k.open() && ps.last.is_some_and(|last| !overlap(last, (k.l, k.r))) {
                    continue;
                }
                let last = if k.open() { Some((k.l, k.r)) } else { ps.last };
                let score = ps.score + k.score;
                if let Some(&s) = index.get(&(c, last)) {
                    if score > cur[s].score {
                        cur[s].score = score;
                        cur[s].back = pi;
                    }
                } else {
                    index.insert((c, last), cur.len());
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
