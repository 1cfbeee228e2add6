# DashFleet agent install script for Windows, served by a DashFleet server for one install link
# (docs/install-agent.md). Run it in an administrator PowerShell (Windows PowerShell 5.1 or
# PowerShell 7).
#
# It downloads this server's Windows installer from the server that served this script, checks its
# SHA-256 (a mismatch installs nothing), writes the agent's configuration (the server's URL and this
# link's enrol key, scope "enroll" only) to %ProgramData%\dashfleet\agent.toml, runs the setup
# silently and starts the agent. The key is written by this script itself: it is never on a
# command line. Running it again on the same machine updates in place.
& {
    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'  # Invoke-WebRequest's progress bar slows it tenfold
    $Server = @SERVER@
    $Version = @VERSION@
    $SetupName = @SETUP_NAME@
    $SetupSha256 = @SETUP_SHA256@
    $ConfigLines = @CONFIG_LINES@
    $Header = '# Written by the DashFleet install script (server, enroll_token). Other keys you add here are kept.'
    $Nothing = ' Nothing was installed.'

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

        # server and enroll_token first, then every other line an administrator put in the file; an
        # older token goes (the agent enrols and keeps a key of its own).
        $dir = Join-Path $env:ProgramData 'dashfleet'
        $config = Join-Path $dir 'agent.toml'
        New-Item -ItemType Directory -Force -Path $dir | Out-Null
        $kept = @()
        if (Test-Path -LiteralPath $config) {
            $kept = @(Get-Content -LiteralPath $config | Where-Object {
                    $_ -notmatch '^\s*(server|token|enroll_token)\s*=' -and $_ -notmatch '^# Written by the DashFleet (agent installer|install script) '
                })
        }
        $lines = @($Header) + $ConfigLines + $kept
        [IO.File]::WriteAllText($config, (($lines -join "`r`n") + "`r`n"), (New-Object Text.UTF8Encoding($false)))

        Write-Host "DashFleet: installing $SetupName"
        $run = Start-Process -FilePath $setup -ArgumentList '/VERYSILENT', '/SUPPRESSMSGBOXES', '/NORESTART' -Wait -PassThru
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
