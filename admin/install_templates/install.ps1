# DashFleet agent install script for Windows, served by a DashFleet server for one install link
# (docs/install-agent.md). Run it in an administrator PowerShell (Windows PowerShell 5.1 or
# PowerShell 7).
#
# It downloads this server's Windows installer from the server that served this script, checks its
# SHA-256 (a mismatch installs nothing) and runs the setup silently with the server's URL and this
# link's enrol key (scope "enroll" only) in a file of its own temporary folder: the key is never on
# a command line nor in the setup's log. The setup makes %ProgramData%\dashfleet the
# Administrators' and SYSTEM's before it writes agent.toml there (a folder someone else made
# beforehand stops it), then starts the agent. A plain http:// server is refused unless
# DASHFLEET_ALLOW_HTTP=1 says otherwise. Running it again on the same machine updates in place.
# Not run on Windows in this project's tests (no Windows here): they parse it (tree-sitter).
& {
    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'  # Invoke-WebRequest's progress bar slows it tenfold
    $Server = @SERVER@
    $Version = @VERSION@
    $SetupName = @SETUP_NAME@
    $SetupSha256 = @SETUP_SHA256@
    $EnrollKey = @ENROLL_KEY@
    $Nothing = ' Nothing was installed.'

    # Over plain http:// this script, the enrol key and every report cross the network in the clear:
    # only when the person running it says so (the command the server hands out for an http://
    # server says so; its administrator had to allow such links explicitly too).
    $allowHttp = $env:DASHFLEET_ALLOW_HTTP -eq '1'
    if ($Server -like 'http://*' -and -not $allowHttp) {
        throw ("DashFleet: $Server is plain http://: the enrol key and every report would cross the network " +
            "unencrypted. Use an https:// install link, or allow http:// explicitly on a network you trust: " +
            "`$env:DASHFLEET_ALLOW_HTTP = '1' before the command." + $Nothing)
    }

    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not (New-Object Security.Principal.WindowsPrincipal($identity)).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw ('DashFleet: run this in an administrator PowerShell (right-click, Run as administrator).' + $Nothing)
    }
    if (-not $SetupName) {
        throw ("DashFleet: this server holds no Windows installer for version $Version; its administrator places " +
            "dashfleet-agent-setup-$Version.exe in the server's downloads folder (docs/install-agent.md)." + $Nothing)
    }

    $work = Join-Path ([IO.Path]::GetTempPath()) ('dashfleet-install-' + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $work | Out-Null
    try {
        $setup = Join-Path $work $SetupName
        Write-Host "DashFleet: downloading $Server/downloads/$SetupName"
        Invoke-WebRequest -UseBasicParsing -Uri "$Server/downloads/$SetupName" -OutFile $setup
        $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $setup).Hash.ToLowerInvariant()
        if ($actual -ne $SetupSha256) {
            throw ("DashFleet: $SetupName does not match its SHA-256 (expected $SetupSha256, got $actual): refusing to install it." + $Nothing)
        }

        # The enrol key in a file of this script's own temporary folder (the setup reads it with
        # /ENROLLTOKENFILE=): never on a command line. The setup writes agent.toml: server and
        # enroll_token first, then every other line an administrator put there (an older token goes).
        $keyFile = Join-Path $work 'enroll-token'
        [IO.File]::WriteAllText($keyFile, $EnrollKey, (New-Object Text.UTF8Encoding($false)))
        $arguments = @('/VERYSILENT', '/SUPPRESSMSGBOXES', '/NORESTART', "/SERVER=$Server", "/ENROLLTOKENFILE=`"$keyFile`"")
        if ($allowHttp) {
            $arguments += '/ALLOWHTTP=1'
        }

        Write-Host "DashFleet: installing $SetupName"
        $run = Start-Process -FilePath $setup -ArgumentList $arguments -Wait -PassThru
        if ($run.ExitCode -eq 7) {
            throw ("DashFleet: the setup refused $env:ProgramData\dashfleet: it existed before the install and belongs " +
                "to someone other than SYSTEM or the Administrators (or is a link). Check what it holds, remove it and " +
                "run this again (the setup's log is in $env:TEMP, Setup Log *.txt)." + $Nothing)
        }
        if ($run.ExitCode -ne 0) {
            throw "DashFleet: the setup exited with status $($run.ExitCode) (its log is in $env:TEMP, Setup Log *.txt)"
        }
        $tray = Join-Path $env:ProgramFiles 'DashFleet Agent\dashfleet-agent-tray.exe'
        if (Test-Path -LiteralPath $tray) {
            Start-Process -FilePath $tray
        }
        Write-Host "DashFleet agent $Version is installed and configured for $Server."
        Write-Host 'It enrols with the server on its first start, starts at every sign-in, and shows up on the fleet page within a minute.'
    }
    finally {
        Remove-Item -Recurse -Force -LiteralPath $work -ErrorAction SilentlyContinue
    }
}
