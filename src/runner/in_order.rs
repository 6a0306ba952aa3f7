//! The run's reports in config order, whatever order the probes finish in: each kept (or
//! written at once through a sink) as soon as every probe before it is done.

use crate::model::error::{ErrorClass, Stage};
use crate::model::report::{ErrorReport, ProbeReport, Summary};

use super::ReportSink;

/// Reports in config order: each kept (or handed to the sink) once every probe before it
/// is done; the ones done early wait here.
pub(super) struct InOrder<'s> {
    next: usize,
    waiting: std::collections::BTreeMap<usize, ProbeReport>,
    kept: Vec<ProbeReport>,
    summary: Summary,
    sink: Option<ReportSink<'s>>,
}

impl<'s> InOrder<'s> {
    /// For `count` probes; without a sink, their reports are kept to be returned.
    pub(super) fn new(count: usize, sink: Option<ReportSink<'s>>) -> Self {
        let kept = Vec::with_capacity(if sink.is_some() { 0 } else { count });
        InOrder { next: 0, waiting: Default::default(), kept, summary: Summary::default(), sink }
    }

    pub(super) fn put(&mut self, index: usize, report: ProbeReport) {
        self.waiting.insert(index, report);
        while let Some(report) = self.waiting.remove(&self.next) {
            self.emit(report);
        }
    }

    fn emit(&mut self, report: ProbeReport) {
        self.summary.count(&report);
        self.next += 1;
        match &mut self.sink {
            Some(sink) => sink(report),
            None => self.kept.push(report),
        }
    }

    /// The rest, once every task is joined: a slot never filled is a lost report (a bug).
    pub(super) fn finish(mut self, count: usize) -> (Vec<ProbeReport>, Summary) {
        while self.next < count {
            let report = self.waiting.remove(&self.next).unwrap_or_else(lost_report);
            self.emit(report);
        }
        (self.kept, self.summary)
    }
}

fn lost_report() -> ProbeReport {
    let error = ErrorReport {
        stage: Stage::Check,
        class: ErrorClass::Internal,
        message: "authprobe lost this probe's result (a bug)".into(),
        hint: ErrorClass::Internal.default_hint().to_string(),
    };
    ProbeReport::failed_without_run("?", "?", "", error)
}
