//! A scripted day played in virtual time (`--probe replay:FILE`).
