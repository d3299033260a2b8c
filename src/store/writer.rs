//! writer (stub until the store branch lands)

#[derive(Clone, Debug)]
pub struct WriterMetrics {
    pub written: prometheus::IntCounter,
    pub dropped: prometheus::IntCounter,
    pub pending: prometheus::IntGauge,
}

#[derive(Clone, Debug, Default)]
pub struct SampleBuffer {}

impl SampleBuffer {
    pub fn push(&self, row: super::SampleRow) {
        let _ = row;
    }
}
impl SampleBuffer {
    pub fn new(cap: usize, m: WriterMetrics) -> Self {
        let _ = (cap, m);
        todo!()
    }
}
pub struct Writer {}
impl Writer {
    pub fn new(s: super::Store, b: SampleBuffer, m: WriterMetrics) -> Self {
        let _ = (s, b, m);
        todo!()
    }
    pub async fn run(self, t: tokio_util::sync::CancellationToken) {
        let _ = t;
    }
}
