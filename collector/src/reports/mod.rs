//! Reports built from stored verdicts (never from raw events): renderers for the
//! CLI now; the gRPC ReportService, XLSX and the web pages come later.

pub mod daily;
