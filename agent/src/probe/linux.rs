//! The Linux probe: utmp sessions, logind lock and idle, X11 idle and foreground,
//! and the user's processes.
