; DashFleet agent for Windows: Inno Setup 6 script, built by .github/workflows/agent-installers.yml
;   iscc /DAppVersion=1.2.3 installers\windows\dashfleet-agent.iss   (after the PyInstaller build)
;
; Silent mass deployment (GPO, Intune, SCCM, PDQ ...), as an administrator:
;   dashfleet-agent-setup-1.2.3.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /SERVER=https://fleet.example.com /ENROLLTOKENFILE=\\share\dashfleet\enroll-token
; /ENROLLTOKENFILE= names a file holding an enrol key (each machine buys its own key with it; the
; key never appears on a command line, where other users and logs would see it). /TOKEN=api_...
; (an organisation key, on the command line) still works for older set-ups.
; writes C:\ProgramData\dashfleet\agent.toml (the agent's machine-wide config file: platformdirs'
; site_config_dir, which tests/installers/test_installer_scripts.py checks) and starts the agent,
; with its tray icon, at every user's sign-in. Without /SERVER= and /TOKEN= an existing agent.toml
; is kept as it is (upgrades). A wrong value stops Setup before anything is installed (exit code 1).
; Uninstall: "%ProgramFiles%\DashFleet Agent\unins000.exe" /VERYSILENT [/PURGE=1 also removes agent.toml].

#ifndef AppVersion
  #define AppVersion "0.0.0-dev"
#endif
#define AppName "DashFleet Agent"
#define RepoRoot AddBackslash(SourcePath) + "..\.."
; The PyInstaller bundle (installers/pyinstaller/dashfleet-agent.spec): console program + tray program.
#define BundleDir RepoRoot + "\dist\dashfleet-agent"
#define TrayExe "dashfleet-agent-tray.exe"
#define ConsoleExe "dashfleet-agent.exe"
; desktop_agent/config.py: APP_NAME and CONFIG_FILE_NAME.
#define ConfigDirName "dashfleet"
#define ConfigFileName "agent.toml"
#define ConfigHeader "# Written by the DashFleet agent installer (server, token). Other keys you add here are kept."

[Setup]
AppId={{5E0C8E0B-7B8F-4C55-9B63-2A1D6E2B9F41}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=DashFleet
DefaultDirName={autopf}\{#AppName}
DisableDirPage=auto
DisableProgramGroupPage=yes
PrivilegesRequired=admin
ArchitecturesAllowed=x64
ArchitecturesInstallIn64BitMode=x64
OutputDir={#RepoRoot}\dist
OutputBaseFilename=dashfleet-agent-setup-{#AppVersion}
Compression=lzma2
SolidCompression=yes
; Upgrades close running agents (Restart Manager); they start again at the next sign-in.
CloseApplications=yes
RestartApplications=no
UninstallDisplayName={#AppName}
UninstallDisplayIcon={app}\{#ConsoleExe}
SetupLogging=yes

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
; run_script's allow-list (docs/agent.md): empty until IT adds scripts; an existing one is IT's and kept.
Source: "{#RepoRoot}\installers\shared\allowlist.toml"; DestDir: "{commonappdata}\{#ConfigDirName}"; Flags: onlyifdoesntexist uninsneveruninstall

[Icons]
; Every user's sign-in starts the tray agent (the all-users Startup folder).
Name: "{commonstartup}\{#AppName}"; Filename: "{app}\{#TrayExe}"; WorkingDir: "{app}"
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#TrayExe}"; WorkingDir: "{app}"

[Run]
; ProgramData lets every user create files in new folders: the config folder (agent.toml and the
; allow-list) is made Administrators' and SYSTEM's alone, readable by users, inheritance cut.
Filename: "{sys}\icacls.exe"; Parameters: """{commonappdata}\{#ConfigDirName}"" /inheritance:r /grant:r *S-1-5-32-544:(OI)(CI)F *S-1-5-18:(OI)(CI)F *S-1-5-32-545:(OI)(CI)RX"; Flags: runhidden waituntilterminated; StatusMsg: "Securing the configuration folder..."
Filename: "{app}\{#TrayExe}"; Description: "Start the DashFleet agent now"; Flags: nowait postinstall skipifsilent runasoriginaluser

[UninstallRun]
; Agents of every signed-in user, so their files can go.
Filename: "{sys}\taskkill.exe"; Parameters: "/F /IM {#TrayExe}"; Flags: runhidden; RunOnceId: "StopTray"
Filename: "{sys}\taskkill.exe"; Parameters: "/F /IM {#ConsoleExe}"; Flags: runhidden; RunOnceId: "StopConsole"

[Code]
var
  Server, Token, KeyName: String;

function ConfigDir(): String;
begin
  Result := ExpandConstant('{commonappdata}\{#ConfigDirName}');
end;

function ConfigFile(): String;
begin
  Result := ConfigDir() + '\{#ConfigFileName}';
end;

{ A TOML basic string. }
function TomlString(Value: String): String;
begin
  StringChangeEx(Value, '\', '\\', True);
  StringChangeEx(Value, '"', '\"', True);
  Result := '"' + Value + '"';
end;

{ Printable ASCII without spaces: what an HTTP header and a URL can carry as they are. }
function PlainAscii(Value: String): Boolean;
var
  I: Integer;
begin
  Result := Value <> '';
  for I := 1 to Length(Value) do
    if (Ord(Value[I]) <= 32) or (Ord(Value[I]) >= 127) then
      Result := False;
end;

{ The agent checks its settings again at every start; this refuses, before anything is installed,
  what could never work. }
function ParameterProblem(): String;
var
  Lower: String;
begin
  Result := '';
  Lower := Lowercase(Server);
  if (Server = '') and (Token = '') then
    Exit;
  if (Server = '') or (Token = '') then
    Result := 'give both /SERVER= and /ENROLLTOKENFILE='
  else if not PlainAscii(Server) or not ((Pos('http://', Lower) = 1) or (Pos('https://', Lower) = 1)) then
    Result := '/SERVER=' + Server + ' is not a server URL (expected https://host[:port])'
  else if not PlainAscii(Token) then
    Result := 'the key contains spaces or characters that are not ASCII';
end;

function InitializeSetup(): Boolean;
var
  Problem, TokenFile: String;
  FileText: AnsiString;
begin
  Server := Trim(ExpandConstant('{param:SERVER|}'));
  Token := Trim(ExpandConstant('{param:TOKEN|}'));
  KeyName := 'token';
  Problem := '';
  TokenFile := ExpandConstant('{param:ENROLLTOKENFILE|}');
  if TokenFile <> '' then
  begin
    { The enrol key: the file's first line. Read here, never logged. }
    if LoadStringFromFile(TokenFile, FileText) then
    begin
      Token := Trim(String(FileText));
      if Pos(#10, Token) > 0 then
        Token := Trim(Copy(Token, 1, Pos(#10, Token) - 1));
      KeyName := 'enroll_token';
    end
    else
      Problem := 'cannot read /ENROLLTOKENFILE=' + TokenFile;
  end;
  if Problem = '' then
    Problem := ParameterProblem();
  Result := Problem = '';
  if not Result then
  begin
    Log('DashFleet agent: ' + Problem);
    SuppressibleMsgBox('DashFleet agent: ' + Problem + '. Nothing was installed.', mbCriticalError, MB_OK, IDOK);
  end;
end;

function IsSetting(Line, Key: String): Boolean;
begin
  Line := Trim(Line);
  Result := (Pos(Key, Line) = 1) and (Pos('=', Trim(Copy(Line, Length(Key) + 1, Length(Line)))) = 1);
end;

{ server and token first, then every other line an administrator put in an existing file. }
procedure WriteConfig();
var
  Existing, Lines: TArrayOfString;
  I, Count: Integer;
begin
  SetArrayLength(Lines, 3);
  Lines[0] := '{#ConfigHeader}';
  Lines[1] := 'server = ' + TomlString(Server);
  if KeyName = 'enroll_token' then
    Lines[2] := 'enroll_token = ' + TomlString(Token)
  else
    Lines[2] := 'token = ' + TomlString(Token);
  Count := 3;
  if LoadStringsFromFile(ConfigFile(), Existing) then
    for I := 0 to GetArrayLength(Existing) - 1 do
      if (Existing[I] <> '{#ConfigHeader}') and not IsSetting(Existing[I], 'server') and not IsSetting(Existing[I], 'token')
        and not IsSetting(Existing[I], 'enroll_token') then
      begin
        SetArrayLength(Lines, Count + 1);
        Lines[Count] := Existing[I];
        Count := Count + 1;
      end;
  ForceDirectories(ConfigDir());
  { TOML is UTF-8, and a byte-order mark would be a syntax error for the agent. }
  if not SaveStringsToUTF8FileWithoutBOM(ConfigFile(), Lines, False) then
    RaiseException('cannot write ' + ConfigFile());
  Log('DashFleet agent: wrote ' + ConfigFile());
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssPostInstall) and (Server <> '') then
    WriteConfig();
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Purge: Boolean;
begin
  if CurUninstallStep <> usPostUninstall then
    Exit;
  { The configuration stays for a reinstall, unless /PURGE=1 or the person says so. }
  Purge := ExpandConstant('{param:PURGE|0}') = '1';
  if not Purge and not UninstallSilent() and FileExists(ConfigFile()) then
    Purge := MsgBox('Also remove the DashFleet agent configuration (' + ConfigFile() + ')?', mbConfirmation, MB_YESNO) = IDYES;
  if Purge then
  begin
    DeleteFile(ConfigFile());
    RemoveDir(ConfigDir());
  end;
end;
