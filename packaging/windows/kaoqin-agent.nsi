; The kaoqin agent's Windows installer (64-bit). Built by scripts/package.sh:
;
;   makensis -DVERSION=0.1.0 -DVI_VERSION=0.1.0.0 -DAGENT_EXE=kaoqin-agent.exe \
;            -DOUTFILE=kaoqin-agent-0.1.0-setup.exe packaging/windows/kaoqin-agent.nsi
;
; Silent installation, as SYSTEM or an administrator (Group Policy startup
; script, SCCM/Intune, any software-distribution tool):
;
;   kaoqin-agent-0.1.0-setup.exe /S /COLLECTOR=https://kaoqin.office.example:50051
;       /CA=\\server\share\kaoqin\ca.pem /TOKEN=kq1-...
;
;   /COLLECTOR=URL  the collector's gRPC address
;   /CA=FILE        the collector's CA certificate (tls/ca.pem), pinned at
;                   enrolment; without it the agent talks plaintext. A
;                   relative path is taken from the directory the installer
;                   is run in
;   /TOKEN=TOKEN    an enrolment token (`kaoqin-collector token create`)
;   /CONFIG=FILE    optional: installed as %ProgramData%\kaoqin\agent.toml
;                   (a path with spaces in quotes: /CONFIG="C:\a b\agent.toml")
;   /D=DIR          optional, last and unquoted: the program directory
;                   (default %ProgramFiles%\kaoqin)
;
; The program goes to %ProgramFiles%\kaoqin; the state (enrolment, spool, log,
; install.log) is %ProgramData%\kaoqin, for SYSTEM and Administrators only. A PC
; enrolled before is not enrolled again: running the installer over an
; installed agent upgrades it in place, keeping its identity and its spool, and
; needs no parameters. Exit codes: 0 done, 1 the program files could not be
; written (or /CONFIG read), 2 not enrolled (the enrolment failed, the /CA file
; cannot be read, or a PC never enrolled got no /COLLECTOR and /TOKEN), 3 the
; service could not be registered, 4 it could not be started. install.log in the
; state directory says what each step printed. The Apps and Features entry gets
; its DisplayVersion, which distribution tools detect, only on success.
;
; Silent removal: "%ProgramFiles%\kaoqin\uninstall.exe" /S removes the service
; and the program and keeps the state directory (identity, undelivered events);
; /PURGE deletes that too.

Unicode true
Target amd64-unicode
RequestExecutionLevel admin
SetCompressor /SOLID lzma
ManifestSupportedOS all

!include FileFunc.nsh
!include LogicLib.nsh

!ifndef VERSION
  !error "define VERSION (-DVERSION=0.1.0)"
!endif
!ifndef VI_VERSION
  !define VI_VERSION "${VERSION}.0"
!endif
!ifndef AGENT_EXE
  !error "define AGENT_EXE, the path of kaoqin-agent.exe (-DAGENT_EXE=...)"
!endif
!ifndef OUTFILE
  !define OUTFILE "kaoqin-agent-${VERSION}-setup.exe"
!endif

!define EXE "kaoqin-agent.exe"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\kaoqin-agent"

Name "kaoqin attendance agent ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\kaoqin"
InstallDirRegKey HKLM "${UNINST_KEY}" "InstallLocation"
ShowInstDetails show
ShowUninstDetails show

VIProductVersion "${VI_VERSION}"
VIAddVersionKey "ProductName" "kaoqin attendance agent"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "kaoqin attendance agent installer"
VIAddVersionKey "LegalCopyright" "Apache-2.0"

Page instfiles
UninstPage uninstConfirm
UninstPage instfiles

Var Args
Var Collector
Var Ca
Var Token
Var Config
Var StateDir
Var Log

; Runs a command, writes it, its exit code and its output to the details and
; install.log; the exit code ("error" if it could not run) is left in $0.
!macro Run COMMAND
  DetailPrint `> ${COMMAND}`
  nsExec::ExecToStack '${COMMAND}'
  Pop $0
  Pop $1
  DetailPrint "$1"
  DetailPrint "(exit $0)"
  ${If} $Log != ""
    FileWrite $Log `> ${COMMAND}$\r$\n$1$\r$\n(exit $0)$\r$\n`
  ${EndIf}
!macroend

; Stops with an exit code and a message (a box unless silent).
!macro Fail CODE MESSAGE
  DetailPrint `${MESSAGE}`
  ${If} $Log != ""
    FileWrite $Log `FAILED (exit ${CODE}): ${MESSAGE}$\r$\n`
    FileClose $Log
    StrCpy $Log ""
  ${EndIf}
  MessageBox MB_ICONSTOP `${MESSAGE}` /SD IDOK
  SetErrorLevel ${CODE}
  Quit
!macroend

!macro OpenLog
  ClearErrors
  FileOpen $Log "$StateDir\install.log" a
  ${If} ${Errors}
    StrCpy $Log ""
  ${Else}
    FileSeek $Log 0 END
    FileWrite $Log "---- kaoqin-agent ${VERSION}$\r$\n"
  ${EndIf}
!macroend

; Option values run to the next option (` /` or ` "/`) or the end of the command
; line, so URLs and paths need no quotes (FileFunc's GetOptions would end them at
; their first "/"). A value may be quoted, /CONFIG="C:\a b\agent.toml", and so
; may the whole option, "/CONFIG=C:\a b\agent.toml", as tools that quote every
; argument with a space write it. Names are matched without regard to case. Push the command
; line, then the option ("/COLLECTOR="); pops the value, with the error flag set
; if the option is absent.
!macro DEFINE_GETOPT UN
Function ${UN}GetOpt
  Exch $1
  Exch
  Exch $0
  Push $2
  Push $3
  Push $4
  Push $5
  StrCpy $0 " $0"
  StrCpy $4 $1
  StrCpy $1 " $4"
  StrCpy $5 ""
  search:
    StrLen $2 $1
    StrCpy $3 0
  find:
    StrCpy $4 $0 $2 $3
    StrCmp $4 "" other_form
    StrCmp $4 $1 found
    IntOp $3 $3 + 1
    Goto find
  other_form:
    ; Not found as ` /NAME=`: look for ` "/NAME=`, once.
    StrCmp $5 "quoted" absent
    StrCpy $5 "quoted"
    StrCpy $4 $1 "" 1
    StrCpy $1 ' "$4'
    Goto search
  found:
    IntOp $3 $3 + $2
    StrCpy $0 $0 "" $3
    StrCmp $5 "quoted" quoted_scan_start
    StrCpy $4 $0 1
    StrCmp $4 '"' quoted
    StrCpy $3 0
  plain:
    StrCpy $4 $0 2 $3
    StrCmp $4 "" plain_end
    StrCmp $4 " /" plain_end
    StrCpy $4 $0 3 $3
    StrCmp $4 ' "/' plain_end
    IntOp $3 $3 + 1
    Goto plain
  plain_end:
    StrCpy $0 $0 $3
  trim:
    StrCpy $4 $0 1 -1
    StrCmp $4 " " 0 done
    StrCpy $0 $0 -1
    Goto trim
  quoted:
    StrCpy $0 $0 "" 1
  quoted_scan_start:
    StrCpy $3 0
  quoted_scan:
    StrCpy $4 $0 1 $3
    StrCmp $4 "" quoted_end
    StrCmp $4 '"' quoted_end
    IntOp $3 $3 + 1
    Goto quoted_scan
  quoted_end:
    StrCpy $0 $0 $3
    Goto done
  absent:
    StrCpy $0 ""
    Pop $5
    Pop $4
    Pop $3
    Pop $2
    Exch
    Pop $1
    Exch $0
    SetErrors
    Return
  done:
    Pop $5
    Pop $4
    Pop $3
    Pop $2
    Exch
    Pop $1
    Exch $0
    ClearErrors
FunctionEnd
!macroend
!insertmacro DEFINE_GETOPT ""
!insertmacro DEFINE_GETOPT "un."

!macro GetOpt UN OPTION RESULT
  Push $Args
  Push `${OPTION}`
  Call ${UN}GetOpt
  Pop ${RESULT}
!macroend

Function .onInit
  SetShellVarContext all
  SetRegView 64
  StrCpy $StateDir "$APPDATA\kaoqin"
  ${GetParameters} $Args
  !insertmacro GetOpt "" "/COLLECTOR=" $Collector
  !insertmacro GetOpt "" "/CA=" $Ca
  !insertmacro GetOpt "" "/TOKEN=" $Token
  !insertmacro GetOpt "" "/CONFIG=" $Config
  ; Relative paths are the caller's (a software-distribution tool runs the
  ; installer in its content folder); the installer itself moves to $INSTDIR.
  ${If} $Ca != ""
    GetFullPathName $R1 $Ca
    StrCmp $R1 "" +2
    StrCpy $Ca $R1
  ${EndIf}
  ${If} $Config != ""
    GetFullPathName $R1 $Config
    StrCmp $R1 "" +2
    StrCpy $Config $R1
  ${EndIf}
  ClearErrors
FunctionEnd

Section "kaoqin-agent"
  ; The state directory first: SYSTEM and Administrators only, by SID so that it
  ; works in every Windows language. (The agent applies the same access list
  ; whenever it opens the directory.)
  CreateDirectory "$StateDir"
  !insertmacro OpenLog
  !insertmacro Run 'icacls "$StateDir" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F'

  ; An upgrade: stop the service and the session helpers it started (the new
  ; service starts new ones), so that the program file can be replaced.
  ${If} ${FileExists} "$INSTDIR\${EXE}"
    !insertmacro Run '"$INSTDIR\${EXE}" service stop'
    !insertmacro Run 'taskkill /F /IM ${EXE}'
    Delete "$INSTDIR\${EXE}.old"
    ClearErrors
    Delete "$INSTDIR\${EXE}"
    ${If} ${Errors}
      ; Still running: Windows lets a running program be renamed, not replaced.
      ClearErrors
      Rename "$INSTDIR\${EXE}" "$INSTDIR\${EXE}.old"
      Delete /REBOOTOK "$INSTDIR\${EXE}.old"
    ${EndIf}
  ${EndIf}

  SetOutPath "$INSTDIR"
  ClearErrors
  File "/oname=${EXE}" "${AGENT_EXE}"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  ${If} ${Errors}
    !insertmacro Fail 1 "Cannot write $INSTDIR\${EXE}."
  ${EndIf}

  ; Apps and Features can remove whatever got this far; DisplayVersion, which
  ; software-distribution tools detect the installation by, is set at the end.
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "kaoqin attendance agent"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "kaoqin"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\${EXE}"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKLM "${UNINST_KEY}" "EstimatedSize" $0

  ${If} $Config != ""
  ${AndIfNot} ${FileExists} "$Config"
    !insertmacro Fail 1 "The configuration $Config given with /CONFIG= cannot be read."
  ${EndIf}
  ${If} $Config != ""
    ClearErrors
    CopyFiles /SILENT "$Config" "$StateDir\agent.toml"
    ${If} ${Errors}
      !insertmacro Fail 1 "Cannot copy /CONFIG=$Config to $StateDir\agent.toml."
    ${EndIf}
  ${EndIf}

  ; Enrol once: an enrolled PC keeps its identity across upgrades.
  ${IfNot} ${FileExists} "$StateDir\enrolment.json"
    ${If} $Collector == ""
    ${OrIf} $Token == ""
      !insertmacro Fail 2 "This PC is not enrolled: run the installer with /COLLECTOR=URL /TOKEN=TOKEN (and /CA=FILE)."
    ${EndIf}
    ${If} $Ca != ""
    ${AndIfNot} ${FileExists} "$Ca"
      !insertmacro Fail 2 "The CA certificate $Ca given with /CA= cannot be read."
    ${EndIf}
    ; The token reaches the agent in its environment, not on a command line.
    System::Call 'kernel32::SetEnvironmentVariable(t "KAOQIN_TOKEN", t "$Token") i .r0'
    ${If} $Ca != ""
      !insertmacro Run '"$INSTDIR\${EXE}" enroll --collector "$Collector" --ca "$Ca" --state-dir "$StateDir"'
    ${Else}
      !insertmacro Run '"$INSTDIR\${EXE}" enroll --collector "$Collector" --state-dir "$StateDir"'
    ${EndIf}
    System::Call 'kernel32::SetEnvironmentVariable(t "KAOQIN_TOKEN", p 0)'
    ${If} $0 != 0
      !insertmacro Fail 2 "The enrolment with $Collector failed (see $StateDir\install.log); run the installer again later."
    ${EndIf}
  ${EndIf}

  ; Register (or update) the service, then start it. The state directory is
  ; named, not left to the service's environment.
  ${If} ${FileExists} "$StateDir\agent.toml"
    !insertmacro Run '"$INSTDIR\${EXE}" service install --config "$StateDir\agent.toml" --state-dir "$StateDir"'
  ${Else}
    !insertmacro Run '"$INSTDIR\${EXE}" service install --state-dir "$StateDir"'
  ${EndIf}
  ${If} $0 != 0
    !insertmacro Fail 3 "The service could not be registered (see $StateDir\install.log)."
  ${EndIf}
  !insertmacro Run '"$INSTDIR\${EXE}" service start'
  ${If} $0 != 0
    !insertmacro Fail 4 "The service could not be started (see $StateDir\install.log)."
  ${EndIf}
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"

  ${If} $Log != ""
    FileWrite $Log "done$\r$\n"
    FileClose $Log
    StrCpy $Log ""
  ${EndIf}
SectionEnd

Function un.onInit
  SetShellVarContext all
  SetRegView 64
  StrCpy $StateDir "$APPDATA\kaoqin"
FunctionEnd

Section "Uninstall"
  ${GetParameters} $Args
  !insertmacro GetOpt "un." "/PURGE" $R1
  ${If} ${Errors}
    StrCpy $R1 "keep"
  ${Else}
    StrCpy $R1 "purge"
  ${EndIf}
  ${If} ${FileExists} "$StateDir\*.*"
    !insertmacro OpenLog
  ${EndIf}

  ; Stops the service (its stop is recorded and delivered if it can be) and
  ; removes it; then the session helpers it started.
  !insertmacro Run '"$INSTDIR\${EXE}" service uninstall'
  !insertmacro Run 'taskkill /F /IM ${EXE}'

  Delete /REBOOTOK "$INSTDIR\${EXE}"
  Delete /REBOOTOK "$INSTDIR\${EXE}.old"
  Delete "$INSTDIR\uninstall.exe"
  RMDir /REBOOTOK "$INSTDIR"
  DeleteRegKey HKLM "${UNINST_KEY}"

  ${If} $Log != ""
    FileWrite $Log "removed ($R1 state)$\r$\n"
    FileClose $Log
    StrCpy $Log ""
  ${EndIf}
  ; The state directory stays unless /PURGE: the PC's identity and the events
  ; not yet delivered.
  ${If} $R1 == "purge"
    RMDir /r "$StateDir"
  ${EndIf}
SectionEnd
