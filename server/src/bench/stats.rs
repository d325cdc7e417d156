//! Timing samples summed up as the benchmarks report them: nearest-rank percentiles, and
//! the table row each benchmark prints.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub samples: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn of(mut ms: Vec<f64>) -> Stats {
        if ms.is_empty() {
            return Stats {
                samples: 0,
                median_ms: f64::NAN,
                p90_ms: f64::NAN,
                p99_ms: f64::NAN,
                min_ms: f64::NAN,
                max_ms: f64::NAN,
            };
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        // Nearest rank: the smallest sample with at least p of all at or below it.
        let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        Stats {
            samples: ms.len(),
            median_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        }
    }

    /// The head of a table of rows, its label column `width` wide.
    pub fn print_header(width: usize) {
        println!(
            "   {:<width$} {:>9} {:>9} {:>9} {:>9}",
            "", "median", "p90", "min", "max"
        );
    }

    /// One row: median, p90, min and max in milliseconds.
    pub fn print_row(&self, label: &str, width: usize) {
        println!(
            "   {label:<width$} {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>6.1} ms",
            self.median_ms, self.p90_ms, self.min_ms, self.max_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Stats::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (s.samples, s.median_ms, s.p90_ms, s.p99_ms, s.min_ms, s.max_ms),
            (100, 50.0, 90.0, 99.0, 1.0, 100.0)
        );
        let one = Stats::of(vec![7.0]);
        assert_eq!((one.median_ms, one.p99_ms), (7.0, 7.0));
        assert!(Stats::of(Vec::new()).median_ms.is_nan());
        let s = Stats::of(vec![3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median_ms, s.p90_ms, s.min_ms, s.max_ms), (2.0, 10.0, 1.0, 10.0));
    }
}
