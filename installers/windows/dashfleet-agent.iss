; DashFleet agent for Windows: Inno Setup 6 script, built by .github/workflows/agent-installers.yml
;   iscc /DAppVersion=1.2.3 installers\windows\dashfleet-agent.iss   (after the PyInstaller build)
;
; Silent mass deployment (GPO, Intune, SCCM, PDQ ...), as an administrator:
;   dashfleet-agent-setup-1.2.3.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /SERVER=https://fleet.example.com /ENROLLTOKENFILE=\\share\dashfleet\enroll-token
; /ENROLLTOKENFILE= names a file holding an enrol key (each machine buys its own key with it).
; /TOKENFILE= names a file holding an organisation key instead (older set-ups). No key is ever
; taken from the command line: other users see command lines, and Setup's log (SetupLogging)
; records its command line; /TOKEN=api_... is refused with a message saying so. An interactive
; Setup with no /SERVER= and no configuration yet asks for the server and the enrol key (a
; password box). A plain http:// server is refused unless /ALLOWHTTP=1 (or, interactively, the
; person confirms it): the key and every report would cross the network unencrypted.
;
; Before anything is written, C:\ProgramData\dashfleet (platformdirs' site_config_dir, which
; tests/installers/test_installer_scripts.py checks) is made the Administrators' and SYSTEM's
; (secure-config-dir.ps1): every user may create folders in ProgramData, so a folder someone else
; made beforehand (or a junction) stops Setup, nothing installed. Then agent.toml is written there
; and the agent starts, with its tray icon, at every user's sign-in. Without /SERVER= an existing
; agent.toml is kept as it is (upgrades). A wrong value stops Setup before anything is installed
; (exit code 1; a refused folder: exit code 7).
; Uninstall: "%ProgramFiles%\DashFleet Agent\unins000.exe" /VERYSILENT [/PURGE=1 also removes agent.toml].
;
; Not compiled or run in this project's tests (no Windows and no working ISCC here): the tests
; check it statically (tests/installers/test_installer_scripts.py); CI's Windows job builds it.

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
; Extracted and run by PrepareToInstall, before anything else is installed; never copied.
Source: "{#RepoRoot}\installers\windows\secure-config-dir.ps1"; Flags: dontcopy
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
; run_script's allow-list (docs/agent.md): empty until IT adds scripts; an existing one is IT's and kept.
Source: "{#RepoRoot}\installers\shared\allowlist.toml"; DestDir: "{commonappdata}\{#ConfigDirName}"; Flags: onlyifdoesntexist uninsneveruninstall

[Icons]
; Every user's sign-in starts the tray agent (the all-users Startup folder).
Name: "{commonstartup}\{#AppName}"; Filename: "{app}\{#TrayExe}"; WorkingDir: "{app}"
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#TrayExe}"; WorkingDir: "{app}"

[Run]
Filename: "{app}\{#TrayExe}"; Description: "Start the DashFleet agent now"; Flags: nowait postinstall skipifsilent runasoriginaluser

[UninstallRun]
; Agents of every signed-in user, so their files can go.
Filename: "{sys}\taskkill.exe"; Parameters: "/F /IM {#TrayExe}"; Flags: runhidden; RunOnceId: "StopTray"
Filename: "{sys}\taskkill.exe"; Parameters: "/F /IM {#ConsoleExe}"; Flags: runhidden; RunOnceId: "StopConsole"

[Code]
var
  Server, Token, KeyName: String;
  AllowHttp: Boolean;
  KeyPage: TInputQueryWizardPage;

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

function IsPlainHttp(Url: String): Boolean;
begin
  Result := Pos('http://', Lowercase(Url)) = 1;
end;

{ The agent checks its settings again at every start; this refuses, before anything is installed,
  what could never work, and a plain http:// server nobody allowed. Never names the key. }
function ParameterProblem(): String;
var
  Lower: String;
begin
  Result := '';
  Lower := Lowercase(Server);
  if (Server = '') and (Token = '') then
    Exit;
  if (Server = '') or (Token = '') then
    Result := 'give both the server URL and the key (/SERVER= and /ENROLLTOKENFILE=)'
  else if not PlainAscii(Server) or not ((Pos('http://', Lower) = 1) or (Pos('https://', Lower) = 1)) then
    Result := Server + ' is not a server URL (expected https://host[:port])'
  else if not PlainAscii(Token) then
    Result := 'the key contains spaces or characters that are not ASCII'
  else if IsPlainHttp(Server) and not AllowHttp then
    Result := Server + ' is plain http://: the key and every report would cross the network unencrypted. ' +
      'Use the server''s https:// address, or allow http:// explicitly with /ALLOWHTTP=1 on a network you trust';
end;

{ The key held in a file: its first line, without spaces around it. False when it cannot be read. }
function KeyFromFile(FileName: String; var Key: String): Boolean;
var
  FileText: AnsiString;
begin
  Key := '';
  Result := LoadStringFromFile(FileName, FileText);
  if Result then
  begin
    Key := Trim(String(FileText));
    if Pos(#10, Key) > 0 then
      Key := Trim(Copy(Key, 1, Pos(#10, Key) - 1));
  end;
end;

function InitializeSetup(): Boolean;
var
  Problem, KeyFile: String;
begin
  Server := Trim(ExpandConstant('{param:SERVER|}'));
  AllowHttp := ExpandConstant('{param:ALLOWHTTP|0}') = '1';
  Token := '';
  KeyName := 'enroll_token';
  Problem := '';
  { Keys come from files only: a command line is seen by other users and recorded in Setup's log. }
  if ExpandConstant('{param:TOKEN|}') <> '' then
    Problem := '/TOKEN= puts the key on the command line, where other users and Setup''s log see it: ' +
      'put the key in a file only administrators read and give /ENROLLTOKENFILE= (an enrol key) or ' +
      '/TOKENFILE= (an organisation key)'
  else
  begin
    KeyFile := ExpandConstant('{param:ENROLLTOKENFILE|}');
    if KeyFile = '' then
    begin
      KeyFile := ExpandConstant('{param:TOKENFILE|}');
      if KeyFile <> '' then
        KeyName := 'token';
    end;
    if (KeyFile <> '') and not KeyFromFile(KeyFile, Token) then
      Problem := 'cannot read the key file ' + KeyFile;
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

{ Interactive Setup without /SERVER= and without a configuration: ask for the server and the enrol
  key. The key is typed into a password box: never on a command line, never shown, never logged. }
procedure InitializeWizard();
begin
  KeyPage := CreateInputQueryPage(wpSelectDir, 'DashFleet server',
    'Which DashFleet server does this computer report to?',
    'Give the address of your organisation''s DashFleet server and an enrol key (an administrator makes ' +
    'one in the web UI''s settings). Leave both empty to configure the agent later.');
  KeyPage.Add('Server URL (https://...):', False);
  KeyPage.Add('Enrol key:', True);
end;

function ShouldSkipPage(PageID: Integer): Boolean;
begin
  Result := (PageID = KeyPage.ID) and ((Server <> '') or FileExists(ConfigFile()));
end;

function NextButtonClick(CurPageID: Integer): Boolean;
var
  Problem: String;
begin
  Result := True;
  if CurPageID <> KeyPage.ID then
    Exit;
  Server := Trim(KeyPage.Values[0]);
  Token := Trim(KeyPage.Values[1]);
  KeyName := 'enroll_token';
  if IsPlainHttp(Server) and (Token <> '') and not AllowHttp then
    AllowHttp := MsgBox(Server + ' is plain http://: the enrol key and every report would cross the network ' +
      'unencrypted. Use it only on a network you trust. Use this http:// server anyway?',
      mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
  Problem := ParameterProblem();
  if Problem <> '' then
  begin
    MsgBox(Problem + '.', mbError, MB_OK);
    Result := False;
  end;
end;

{ Before anything is installed: the configuration folder becomes the Administrators' and SYSTEM's
  (secure-config-dir.ps1), or Setup stops (exit code 7) when someone else made it beforehand. }
function PrepareToInstall(var NeedsRestart: Boolean): String;
var
  ResultCode: Integer;
begin
  Result := '';
  ExtractTemporaryFile('secure-config-dir.ps1');
  if not Exec(ExpandConstant('{sys}\WindowsPowerShell\v1.0\powershell.exe'),
    '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + ExpandConstant('{tmp}\secure-config-dir.ps1') +
    '" -Path "' + ConfigDir() + '"', '', SW_HIDE, ewWaitUntilTerminated, ResultCode) then
    Result := 'cannot run PowerShell to secure ' + ConfigDir()
  else if ResultCode = 2 then
    Result := ConfigDir() + ' existed before this install and belongs to someone other than SYSTEM or the ' +
      'Administrators (or holds something that does). Any user may create folders in ProgramData, so Setup ' +
      'writes no key there: check what it holds, remove it and run Setup again'
  else if ResultCode = 3 then
    Result := ConfigDir() + ' is a junction, a link or a file, not a plain folder: remove it and run Setup again'
  else if ResultCode <> 0 then
    Result := 'cannot secure ' + ConfigDir() + ' (exit status ' + IntToStr(ResultCode) + ')';
  if Result <> '' then
    Log('DashFleet agent: ' + Result + '. Nothing was installed.');
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
