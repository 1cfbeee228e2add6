# Makes the agent's configuration folder (%ProgramData%\dashfleet) the Administrators' and SYSTEM's
# before anything is written in it. Run by Setup (dashfleet-agent.iss, PrepareToInstall) as an
# administrator:  powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -File secure-config-dir.ps1 -Path <folder>
#
# Why: every user may create folders in %ProgramData%, and owns what they create there. A user who
# made %ProgramData%\dashfleet before the install could read the key Setup writes into it, or plant
# the configuration and the allow-list of scripts the agent runs. So:
# - a folder that exists already must be a real folder (not a junction or link) owned by SYSTEM or
#   the Administrators, and so must everything in it; otherwise nothing changes and the exit status
#   says why (Setup stops, "nothing was installed");
# - a new folder is created with its access list at once (no moment with ProgramData's inherited one);
# - then the folder's access list is set: SYSTEM and Administrators full control, Users read and
#   execute, nothing inherited from %ProgramData%; the owner is the Administrators.
# Exit status: 0 done; 2 an existing folder (or something in it) belongs to someone else; 3 the path
# is a junction, a link or a file; 1 anything else. Windows PowerShell 5.1 and PowerShell 7.
# Not run on Windows in this project's tests (no Windows here): it is parsed by
# tests/installers/test_installer_scripts.py, and CI's Windows job installs with it.
param([Parameter(Mandatory = $true)][string]$Path)

$ErrorActionPreference = 'Stop'
try {
    $system = New-Object Security.Principal.SecurityIdentifier('S-1-5-18')
    $admins = New-Object Security.Principal.SecurityIdentifier('S-1-5-32-544')
    $users = New-Object Security.Principal.SecurityIdentifier('S-1-5-32-545')
    $trusted = @($system.Value, $admins.Value)

    $acl = New-Object Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)  # nothing inherited from %ProgramData%
    $inherit = [Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    $propagate = [Security.AccessControl.PropagationFlags]::None
    $grants = @(@($system, 'FullControl'), @($admins, 'FullControl'), @($users, 'ReadAndExecute'))
    foreach ($grant in $grants) {
        $rule = New-Object Security.AccessControl.FileSystemAccessRule($grant[0], $grant[1], $inherit, $propagate, 'Allow')
        $acl.AddAccessRule($rule)
    }
    $acl.SetOwner($admins)

    if (Test-Path -LiteralPath $Path) {
        $item = Get-Item -LiteralPath $Path -Force
        if (-not $item.PSIsContainer -or ($item.Attributes -band [IO.FileAttributes]::ReparsePoint)) {
            Write-Output "$Path is not a plain folder (a file, a junction or a link): remove it and run Setup again."
            exit 3
        }
        foreach ($entry in @($item) + @(Get-ChildItem -LiteralPath $Path -Force -Recurse)) {
            $owner = (Get-Acl -LiteralPath $entry.FullName).GetOwner([Security.Principal.SecurityIdentifier]).Value
            if ($trusted -notcontains $owner) {
                Write-Output "$($entry.FullName) belongs to $owner, not to SYSTEM or the Administrators: check what it holds, remove it and run Setup again."
                exit 2
            }
            if ($entry.Attributes -band [IO.FileAttributes]::ReparsePoint) {
                Write-Output "$($entry.FullName) is a junction or a link: remove it and run Setup again."
                exit 3
            }
        }
    }
    else {
        $info = New-Object IO.DirectoryInfo($Path)
        if ($PSVersionTable.PSEdition -eq 'Core') {
            [IO.FileSystemAclExtensions]::Create($info, $acl)  # .NET (PowerShell 7)
        }
        else {
            $info.Create($acl)  # .NET Framework (Windows PowerShell 5.1)
        }
    }
    Set-Acl -LiteralPath $Path -AclObject $acl
    exit 0
}
catch {
    Write-Output "cannot secure ${Path}: $($_.Exception.Message)"
    exit 1
}
