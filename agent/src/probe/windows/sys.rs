//! The Win32 calls of the Windows probe, the session helper and the service, each
//! wrapped in a safe function. Nothing here decides anything: the meaning of what
//! these return is in `probe::wts`, tested on every platform.
//!
//! What must stay true: every buffer Windows allocates is freed on every path
//! (`WTSFreeMemory`, `LocalFree`), every handle is closed, and no pointer outlives
//! the call it was made for.

#![allow(unsafe_code)]

use std::ffi::{OsStr, c_void};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
    SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES,
};
use windows_sys::Win32::System::Pipes::{
    GetNamedPipeClientProcessId, GetNamedPipeClientSessionId, GetNamedPipeServerSessionId,
};
use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ, RegGetValueW};
use windows_sys::Win32::System::RemoteDesktop::{
    ProcessIdToSessionId, WTS_CURRENT_SERVER_HANDLE, WTS_INFO_CLASS, WTS_SESSION_INFOW,
    WTSConnectState, WTSDomainName, WTSEnumerateSessionsW, WTSFreeMemory, WTSINFOEXW,
    WTSQuerySessionInformationW, WTSQueryUserToken, WTSSessionInfoEx, WTSUserName,
};
use windows_sys::Win32::System::SystemInformation::GetTickCount;
use windows_sys::Win32::System::Threading::{
    CREATE_NO_WINDOW, CreateMutexW, CreateProcessAsUserW, OpenProcess, PROCESS_INFORMATION,
    PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
    STARTUPINFOW,
};
use windows_sys::Win32::UI::Input::KeyboardAndMouse::{GetLastInputInfo, LASTINPUTINFO};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    GetForegroundWindow, GetSystemMetrics, GetWindowTextW, GetWindowThreadProcessId,
    SM_SHUTTINGDOWN,
};

use crate::probe::wts::{
    self, ConnectState, HelperSample, MAX_TITLE_CHARS, PROTOCOL_VERSION, SessionInfo,
};

/// A NUL-terminated UTF-16 copy of `s`.
fn wide(s: impl AsRef<OsStr>) -> Vec<u16> {
    s.as_ref().encode_wide().chain(Some(0)).collect()
}

/// The text of a UTF-16 buffer up to its first NUL.
fn from_wide(buf: &[u16]) -> String {
    let n = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf16_lossy(&buf[..n])
}

/// Closes a handle when dropped.
struct Handle(HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle was returned open by Windows and is closed once, here.
            unsafe { CloseHandle(self.0) };
        }
    }
}

/// `WTSQuerySessionInformationW` for one class: the raw bytes, freed before returning.
fn query(session: u32, class: WTS_INFO_CLASS) -> Option<Vec<u8>> {
    let mut buf: *mut u16 = null_mut();
    let mut len: u32 = 0;
    // SAFETY: both out-pointers point to live locals; on success `buf` holds `len`
    // bytes that belong to us until WTSFreeMemory.
    let ok = unsafe {
        WTSQuerySessionInformationW(
            WTS_CURRENT_SERVER_HANDLE,
            session,
            class,
            &mut buf,
            &mut len,
        )
    };
    if ok == 0 || buf.is_null() {
        return None;
    }
    // SAFETY: `buf` is valid for `len` bytes (see above); copied before it is freed.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) }.to_vec();
    // SAFETY: `buf` was allocated by WTSQuerySessionInformationW and is freed once.
    unsafe { WTSFreeMemory(buf.cast()) };
    Some(bytes)
}

fn query_string(session: u32, class: WTS_INFO_CLASS) -> Option<String> {
    let bytes = query(session, class)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(from_wide(&units))
}

fn query_i32(session: u32, class: WTS_INFO_CLASS) -> Option<i32> {
    let bytes = query(session, class)?;
    Some(i32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// `WTSSessionInfoEx` level 1: (SessionFlags, LogonTime).
fn query_ex(session: u32) -> Option<(i32, i64)> {
    let bytes = query(session, WTSSessionInfoEx)?;
    if bytes.len() < std::mem::size_of::<WTSINFOEXW>() {
        return None;
    }
    // SAFETY: the buffer holds a whole WTSINFOEXW (checked above); read_unaligned
    // because a Vec<u8> has no alignment guarantee.
    let ex: WTSINFOEXW = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if ex.Level != 1 {
        return None;
    }
    // SAFETY: Level 1 means the union holds WTSInfoExLevel1, its only member.
    let l1 = unsafe { ex.Data.WTSInfoExLevel1 };
    Some((l1.SessionFlags, l1.LogonTime))
}

/// What WTS says about one session, `None` if it does not exist (any more).
pub(crate) fn session_info(session: u32) -> Option<SessionInfo> {
    let state = ConnectState::from_raw(query_i32(session, WTSConnectState)?);
    let user = query_string(session, WTSUserName).unwrap_or_default();
    let domain = query_string(session, WTSDomainName).unwrap_or_default();
    let ex = query_ex(session);
    Some(SessionInfo {
        id: session,
        account: wts::account_name(&user, &domain),
        state,
        locked: ex.and_then(|(flags, _)| wts::lock_flag(flags)),
        logon_ms: ex.and_then(|(_, t)| wts::filetime_to_ms(t)),
    })
}

/// Every session on this PC (`WTSEnumerateSessionsW`), with its account.
pub(crate) fn sessions() -> io::Result<Vec<SessionInfo>> {
    let mut info: *mut WTS_SESSION_INFOW = null_mut();
    let mut count: u32 = 0;
    // SAFETY: out-pointers point to live locals; on success `info` holds `count`
    // entries that belong to us until WTSFreeMemory.
    let ok =
        unsafe { WTSEnumerateSessionsW(WTS_CURRENT_SERVER_HANDLE, 0, 1, &mut info, &mut count) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let ids: Vec<(u32, i32)> = if info.is_null() {
        Vec::new()
    } else {
        // SAFETY: `info` is valid for `count` entries; copied before it is freed.
        unsafe { std::slice::from_raw_parts(info, count as usize) }
            .iter()
            .map(|s| (s.SessionId, s.State))
            .collect()
    };
    if !info.is_null() {
        // SAFETY: allocated by WTSEnumerateSessionsW, freed once.
        unsafe { WTSFreeMemory(info.cast()) };
    }
    Ok(ids
        .into_iter()
        .map(|(id, state)| {
            session_info(id).unwrap_or(SessionInfo {
                id,
                account: None,
                state: ConnectState::from_raw(state),
                locked: None,
                logon_ms: None,
            })
        })
        .collect())
}

/// The session a process runs in.
pub(crate) fn process_session(pid: u32) -> Option<u32> {
    let mut session = 0u32;
    // SAFETY: the out-pointer points to a live local.
    (unsafe { ProcessIdToSessionId(pid, &mut session) } != 0).then_some(session)
}

/// The full path of a process's executable.
pub(crate) fn process_image(pid: u32) -> Option<String> {
    // SAFETY: plain call; a null result is checked.
    let h = Handle(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) });
    if h.0.is_null() {
        return None;
    }
    let mut buf = [0u16; 1024];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` has room for `len` characters; Windows writes at most that.
    let ok =
        unsafe { QueryFullProcessImageNameW(h.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len) };
    (ok != 0).then(|| String::from_utf16_lossy(&buf[..(len as usize).min(buf.len())]))
}

/// What the helper sends: idle time, and the foreground window's executable and
/// title. Only meaningful inside a user's session.
pub(crate) fn sample() -> HelperSample {
    let mut lii = LASTINPUTINFO {
        cbSize: std::mem::size_of::<LASTINPUTINFO>() as u32,
        dwTime: 0,
    };
    // SAFETY: `lii` is a live LASTINPUTINFO with cbSize set.
    let idle_ms = if unsafe { GetLastInputInfo(&mut lii) } != 0 {
        // SAFETY: plain call.
        u64::from(wts::idle_ms(unsafe { GetTickCount() }, lii.dwTime))
    } else {
        0
    };
    // SAFETY: plain call; null (lock screen, UAC prompt) is checked.
    let hwnd = unsafe { GetForegroundWindow() };
    let (mut exe, mut title) = (None, None);
    if !hwnd.is_null() {
        let mut pid = 0u32;
        // SAFETY: `hwnd` came from GetForegroundWindow; a window that has closed
        // since only makes the call fail. The out-pointer is a live local.
        unsafe { GetWindowThreadProcessId(hwnd, &mut pid) };
        if pid != 0 {
            exe = process_image(pid);
        }
        let mut buf = [0u16; MAX_TITLE_CHARS + 1];
        // SAFETY: `buf` has room for the count given, including the NUL.
        let n = unsafe { GetWindowTextW(hwnd, buf.as_mut_ptr(), buf.len() as i32) };
        if n > 0 {
            title = Some(from_wide(&buf[..(n as usize).min(buf.len())]));
        }
    }
    HelperSample {
        v: PROTOCOL_VERSION,
        idle_ms,
        exe,
        title,
    }
}

/// `HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid`, Windows' own machine identity.
pub fn machine_guid() -> Option<String> {
    let key = wide(r"SOFTWARE\Microsoft\Cryptography");
    let value = wide("MachineGuid");
    let mut buf = [0u16; 128];
    let mut size = std::mem::size_of_val(&buf) as u32;
    // SAFETY: key and value are NUL-terminated; `buf` has room for `size` bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            null_mut(),
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    };
    let id = from_wide(&buf);
    (rc == ERROR_SUCCESS && !id.trim().is_empty()).then(|| id.trim().to_ascii_lowercase())
}

/// The machine's `ProgramData` folder (`FOLDERID_ProgramData`, normally
/// `C:\ProgramData`), from Windows itself rather than from the `ProgramData`
/// variable of whatever environment the agent was started in.
pub fn program_data() -> Option<std::path::PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{
        FOLDERID_ProgramData, KF_FLAG_DEFAULT, SHGetKnownFolderPath,
    };
    let mut path: windows_sys::core::PWSTR = null_mut();
    // SAFETY: the GUID is a static; `path` receives a string Windows allocates,
    // freed below on every path (the call may allocate even when it fails).
    let hr = unsafe {
        SHGetKnownFolderPath(
            &FOLDERID_ProgramData,
            KF_FLAG_DEFAULT as u32,
            null_mut(),
            &mut path,
        )
    };
    let found = (hr >= 0 && !path.is_null()).then(|| {
        // SAFETY: on success `path` is a NUL-terminated UTF-16 string.
        let wide = unsafe {
            let len = (0..).take_while(|&i| *path.add(i) != 0).count();
            std::slice::from_raw_parts(path, len)
        };
        std::path::PathBuf::from(std::ffi::OsString::from_wide(wide))
    });
    // SAFETY: `path` is null or was allocated by SHGetKnownFolderPath; freed once.
    unsafe { CoTaskMemFree(path.cast_const().cast()) };
    found.filter(|p| !p.as_os_str().is_empty())
}

/// True while Windows is shutting down.
pub(crate) fn shutting_down() -> bool {
    // SAFETY: plain call.
    unsafe { GetSystemMetrics(SM_SHUTTINGDOWN) != 0 }
}

/// The session id of a named pipe's client, as the kernel knows it.
pub(crate) fn pipe_client_session(pipe: *mut c_void) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: `pipe` is an open server end borrowed for this call; the
    // out-pointer is a live local.
    (unsafe { GetNamedPipeClientSessionId(pipe, &mut id) } != 0).then_some(id)
}

/// The process id of a named pipe's client.
pub(crate) fn pipe_client_pid(pipe: *mut c_void) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: `pipe` is an open server end borrowed for this call; the
    // out-pointer is a live local.
    (unsafe { GetNamedPipeClientProcessId(pipe, &mut id) } != 0).then_some(id)
}

/// The session id of a named pipe's server (the service runs in session 0).
pub(crate) fn pipe_server_session(pipe: *mut c_void) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: `pipe` is an open client end borrowed for this call.
    (unsafe { GetNamedPipeServerSessionId(pipe, &mut id) } != 0).then_some(id)
}

/// Who may use the helpers' pipe: SYSTEM and administrators fully; interactive
/// users may read and write but not create instances of the pipe (0x12019b is
/// FILE_GENERIC_READ | FILE_GENERIC_WRITE without FILE_CREATE_PIPE_INSTANCE), so
/// no user can stand in for the service and read another user's titles.
pub(crate) const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;IU)";

/// Security attributes built from [`PIPE_SDDL`], freed on drop.
pub(crate) struct PipeSecurity {
    sd: PSECURITY_DESCRIPTOR,
    attrs: SECURITY_ATTRIBUTES,
}

// SAFETY: the descriptor is owned by this value and only read by Windows.
unsafe impl Send for PipeSecurity {}

impl PipeSecurity {
    pub(crate) fn new() -> io::Result<Box<PipeSecurity>> {
        let sd = descriptor(PIPE_SDDL)?;
        let mut me = Box::new(PipeSecurity {
            sd,
            attrs: SECURITY_ATTRIBUTES::default(),
        });
        me.attrs = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: me.sd,
            bInheritHandle: 0,
        };
        Ok(me)
    }

    /// For `ServerOptions::create_with_security_attributes_raw`; valid while `self` lives.
    pub(crate) fn as_ptr(&mut self) -> *mut c_void {
        (&raw mut self.attrs).cast()
    }
}

impl Drop for PipeSecurity {
    fn drop(&mut self) {
        // SAFETY: `sd` came from ConvertStringSecurityDescriptor..., freed once.
        unsafe { LocalFree(self.sd as HLOCAL) };
    }
}

/// A security descriptor from SDDL, to be freed with `LocalFree`.
fn descriptor(sddl: &str) -> io::Result<PSECURITY_DESCRIPTOR> {
    let sddl = wide(sddl);
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `sddl` is NUL-terminated; on success `sd` is the caller's until
    // LocalFree.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sd)
}

/// Gives the directory `path` the access list [`crate::state::STATE_DIR_SDDL`]
/// (protected: what it inherited from its parent is dropped), which what is
/// created in it inherits.
pub fn secure_dir(path: &Path) -> io::Result<()> {
    let sd = descriptor(crate::state::STATE_DIR_SDDL)?;
    let (mut present, mut defaulted) = (0, 0);
    let mut dacl: *mut ACL = null_mut();
    // SAFETY: `sd` is a valid descriptor; the out-pointers are live locals; `dacl`
    // points into `sd`, which lives until LocalFree below.
    let r = unsafe {
        if GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) == 0 {
            Err(io::Error::last_os_error())
        } else {
            let name = wide(path);
            let e = SetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                dacl,
                null(),
            );
            if e == ERROR_SUCCESS {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(e as i32))
            }
        }
    };
    // SAFETY: `sd` came from ConvertStringSecurityDescriptor..., freed once.
    unsafe { LocalFree(sd as HLOCAL) };
    r
}

/// Starts `exe args` in `session` as the user logged on there, with no window.
/// Needs the LocalSystem account (the service's), for `WTSQueryUserToken`.
pub(crate) fn spawn_in_session(session: u32, exe: &Path, command_line: &str) -> io::Result<u32> {
    let mut token: HANDLE = null_mut();
    // SAFETY: the out-pointer points to a live local; the token is closed below.
    if unsafe { WTSQueryUserToken(session, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let token = Handle(token);
    let app = wide(exe);
    let mut cmd = wide(command_line);
    let mut desktop = wide(r"winsta0\default");
    let si = STARTUPINFOW {
        cb: std::mem::size_of::<STARTUPINFOW>() as u32,
        lpDesktop: desktop.as_mut_ptr(),
        ..Default::default()
    };
    let mut pi = PROCESS_INFORMATION::default();
    // SAFETY: every string is NUL-terminated and outlives the call; `cmd` is
    // writable as CreateProcessAsUserW requires; `si` and `pi` are live.
    let ok = unsafe {
        CreateProcessAsUserW(
            token.0,
            app.as_ptr(),
            cmd.as_mut_ptr(),
            null(),
            null(),
            0,
            CREATE_NO_WINDOW,
            null(),
            null(),
            &si,
            &mut pi,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    drop(Handle(pi.hThread));
    drop(Handle(pi.hProcess));
    Ok(pi.dwProcessId)
}

/// Holds a named mutex: `Ok(None)` if another process of this session holds it.
pub(crate) struct SingleInstance {
    _mutex: Handle,
}

/// Takes the session-wide mutex `name`, or says another process has it.
pub(crate) fn single_instance(name: &str) -> io::Result<Option<SingleInstance>> {
    let n = wide(name);
    // SAFETY: `n` is NUL-terminated; the handle is closed when the guard drops.
    let h = unsafe { CreateMutexW(null(), 0, n.as_ptr()) };
    let err = io::Error::last_os_error();
    if h.is_null() {
        return Err(err);
    }
    let guard = SingleInstance { _mutex: Handle(h) };
    if err.raw_os_error() == Some(windows_sys::Win32::Foundation::ERROR_ALREADY_EXISTS as i32) {
        return Ok(None);
    }
    Ok(Some(guard))
}
