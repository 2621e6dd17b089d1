<#
.SYNOPSIS
  Installs AvatarCam for the current user on Windows (no administrator rights needed).

.DESCRIPTION
  Creates a virtual environment under %LOCALAPPDATA%\AvatarCam, installs PyTorch (the CPU build, or the
  CUDA build when nvidia-smi finds an NVIDIA GPU) and AvatarCam with its extras, puts an `avatarcam`
  command on the user PATH, adds a Start-menu shortcut for the tray app, checks OBS Studio and its
  Virtual Camera (the camera Zoom, Teams and Meet see), and ends by running `avatarcam doctor`.
  Every step checks first and says "already done", so running it again changes nothing.
  -WhatIf lists what would be done without changing anything.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installers\windows\install.ps1
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installers\windows\install.ps1 -Yes -Autostart
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installers\windows\install.ps1 -Uninstall
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    # the virtual environment
    [string]$Prefix = (Join-Path $env:LOCALAPPDATA 'AvatarCam\venv'),
    # a source checkout, wheel or sdist (default: the checkout holding this script)
    [string]$From = '',
    # a Python 3.10+ executable (default: the py launcher's newest Python 3, else python.exe)
    [string]$Python = '',
    # force the CPU or the CUDA build of PyTorch (default: CUDA when nvidia-smi works)
    [switch]$Cpu,
    [switch]$Gpu,
    # where the CUDA build of PyTorch comes from
    [string]$CudaIndex = 'https://download.pytorch.org/whl/cu128',
    # more extras, comma separated (e.g. paper)
    [string]$Extras = '',
    # skip the desktop app (PySide6)
    [switch]$NoUi,
    # start the tray app at login
    [switch]$Autostart,
    # create the environment with --system-site-packages and reuse this Python's packages (developers, CI)
    [switch]$UseCurrentPythonPackages,
    # recreate the environment
    [switch]$Reinstall,
    # agree to every question
    [switch]$Yes,
    # remove the environment, the command and the shortcuts (avatars and settings stay)
    [switch]$Uninstall,
    # with -Uninstall: also delete avatars, settings and caches
    [switch]$Purge
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'

$TorchVersion = '2.13.0'   # PyPI's Windows wheels are the CPU build
$ObsCameraClsid = '{A3FCE0F5-3493-419F-958A-ABA1250EC20B}'   # the OBS Virtual Camera DirectShow filter
$Root = Split-Path -Parent $Prefix
$BinDir = Join-Path $Root 'bin'
$Shim = Join-Path $BinDir 'avatarcam.cmd'
$VenvPy = Join-Path $Prefix 'Scripts\python.exe'
$VenvPyw = Join-Path $Prefix 'Scripts\pythonw.exe'
$VenvExe = Join-Path $Prefix 'Scripts\avatarcam.exe'
$Stamp = Join-Path $Prefix 'avatarcam-install.stamp'
$MenuLink = Join-Path ([Environment]::GetFolderPath('Programs')) 'AvatarCam.lnk'
$StartupLink = Join-Path ([Environment]::GetFolderPath('Startup')) 'AvatarCam.lnk'
# platformdirs.user_data_dir('avatarcam') on Windows: avatars, settings and caches
$UserData = Join-Path $env:LOCALAPPDATA 'avatarcam\avatarcam'
$PackageParts = @('pyproject.toml', 'README.md', 'LICENSE', 'avatarcam', 'engine', 'ui')

# ------------------------------------------------------------------------------------------------ output
function Write-Step([string]$Text) { Write-Host ''; Write-Host "==> $Text" -ForegroundColor Cyan }
function Write-Ok([string]$Text) { Write-Host "    $Text" }
function Write-Already([string]$Text) { Write-Host "    already done: $Text" -ForegroundColor DarkGray }
function Write-Note([string]$Text) { Write-Host "    note: $Text" -ForegroundColor Yellow }

function Confirm-Step([string]$Question) {
    if ($Yes -or $WhatIfPreference) { return $true }
    if ([Console]::IsInputRedirected) {
        Write-Warning "$Question -> no (no console to ask; pass -Yes to agree)"
        return $false
    }
    $answer = Read-Host "$Question [y/N]"
    return ($answer -match '^(y|yes)$')
}

# run a program; stop with its output when it fails (native programs do not honour $ErrorActionPreference)
function Invoke-Native([string]$Exe, [string[]]$Arguments, [string]$What) {
    if (-not $PSCmdlet.ShouldProcess("$Exe $($Arguments -join ' ')", $What)) { return }
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE): $Exe $($Arguments -join ' ')" }
}

function Test-Native([string]$Exe, [string[]]$Arguments) {
    try {
        $null = & $Exe @Arguments 2>&1
        return ($LASTEXITCODE -eq 0)
    } catch {
        return $false
    }
}

function Get-NativeOutput([string]$Exe, [string[]]$Arguments) {
    try {
        $out = & $Exe @Arguments 2>$null
        if ($LASTEXITCODE -ne 0) { return '' }
        return (($out | Out-String).Trim())
    } catch {
        return ''
    }
}

function Remove-Thing([string]$Path, [string]$What) {
    if (Test-Path -LiteralPath $Path) {
        if ($PSCmdlet.ShouldProcess($Path, "remove $What")) { Remove-Item -LiteralPath $Path -Recurse -Force }
        Write-Ok "removed $Path"
    } else {
        Write-Already "nothing to remove ($What)"
    }
}

# ------------------------------------------------------------------------------------------------ shortcuts, PATH
function Get-ShortcutTarget([string]$Path) {
    if (-not (Test-Path -LiteralPath $Path)) { return $null }
    $shell = New-Object -ComObject WScript.Shell
    $link = $shell.CreateShortcut($Path)
    return @{ Target = $link.TargetPath; Arguments = $link.Arguments }
}

function Set-Shortcut([string]$Path, [string]$What) {
    $arguments = '-m avatarcam.cli tray'
    $current = Get-ShortcutTarget $Path
    if ($null -ne $current -and $current.Target -eq $VenvPyw -and $current.Arguments -eq $arguments) {
        Write-Already "$What ($Path)"
        return
    }
    if (-not $PSCmdlet.ShouldProcess($Path, "create $What")) { return }
    $shell = New-Object -ComObject WScript.Shell
    $link = $shell.CreateShortcut($Path)
    $link.TargetPath = $VenvPyw          # pythonw: no console window behind the tray app
    $link.Arguments = $arguments
    $link.WorkingDirectory = $env:USERPROFILE
    $link.Description = 'AvatarCam: a live talking avatar as your webcam'
    $icon = Get-ChildItem -Path (Join-Path $Prefix 'Lib\site-packages\ui') -Filter '*.ico' -Recurse -ErrorAction SilentlyContinue |
        Select-Object -First 1
    if ($null -ne $icon) { $link.IconLocation = $icon.FullName }
    $link.Save()
    Write-Ok "created $What ($Path)"
}

function Remove-OurShortcut([string]$Path, [string]$What) {
    $current = Get-ShortcutTarget $Path
    if ($null -eq $current) { Write-Already "nothing to remove ($What)"; return }
    if ($current.Target -like "$Prefix*") { Remove-Thing $Path $What }
    else { Write-Warning "$Path does not start this installation: left in place" }
}

function Get-UserPath {
    $value = [Environment]::GetEnvironmentVariable('Path', 'User')
    if ($null -eq $value) { return @() }
    return @($value -split ';' | Where-Object { $_ -ne '' })
}

function Set-UserPath([string[]]$Parts) {
    [Environment]::SetEnvironmentVariable('Path', ($Parts -join ';'), 'User')
}

# ------------------------------------------------------------------------------------------------ uninstall
if ($Purge -and -not $Uninstall) { throw '-Purge goes with -Uninstall' }
if ($Uninstall) {
    Write-Step "Uninstalling AvatarCam ($Prefix)"
    Remove-OurShortcut $StartupLink 'autostart shortcut'
    Remove-OurShortcut $MenuLink 'Start-menu shortcut'
    Remove-Thing $Shim 'avatarcam command'
    $userPath = Get-UserPath
    if ($userPath -contains $BinDir) {
        if ($PSCmdlet.ShouldProcess('user PATH', "remove $BinDir")) { Set-UserPath @($userPath | Where-Object { $_ -ne $BinDir }) }
        Write-Ok "removed $BinDir from your PATH"
    } else {
        Write-Already "nothing to remove ($BinDir is not on your PATH)"
    }
    if (Test-Path -LiteralPath $BinDir) {
        if (-not (Get-ChildItem -LiteralPath $BinDir -Force)) { Remove-Thing $BinDir 'bin folder' }
    }
    if (Test-Path -LiteralPath (Join-Path $Prefix 'pyvenv.cfg')) {
        Remove-Thing $Prefix 'environment'
    } elseif (Test-Path -LiteralPath $Prefix) {
        Write-Warning "$Prefix is not a virtual environment (no pyvenv.cfg): left in place"
    } else {
        Write-Already 'nothing to remove (environment)'
    }
    if ($Purge) {
        if ((Test-Path -LiteralPath $UserData) -and (Confirm-Step "Delete $UserData (avatars, settings, caches)?")) {
            Remove-Thing $UserData 'avatars, settings and caches'
        }
    } else {
        Write-Ok "Kept: avatars and settings in $UserData (delete them with -Uninstall -Purge)."
    }
    # the default %LOCALAPPDATA%\AvatarCam goes when nothing is left in it (a custom -Prefix's parent stays)
    if ((Split-Path -Leaf $Root) -eq 'AvatarCam' -and (Test-Path -LiteralPath $Root) -and
        -not (Get-ChildItem -LiteralPath $Root -Force -Recurse -File)) {
        Remove-Thing $Root 'empty AvatarCam folder'
    }
    Write-Host ''
    Write-Host 'AvatarCam is uninstalled. OBS Studio was left alone.'
    return
}

# ------------------------------------------------------------------------------------------------ checks
if ($Cpu -and $Gpu) { throw 'use -Cpu or -Gpu, not both' }
if ($From -eq '') {
    $From = Split-Path -Parent (Split-Path -Parent $PSScriptRoot)
    if (-not (Test-Path -LiteralPath (Join-Path $From 'pyproject.toml'))) {
        throw 'this script is not inside an AvatarCam checkout: pass -From PATH (checkout, .whl or .tar.gz)'
    }
}
if (-not (Test-Path -LiteralPath $From)) { throw "-From: no such file or folder: $From" }
$From = (Resolve-Path -LiteralPath $From).Path
$FromIsDir = Test-Path -LiteralPath $From -PathType Container

function Find-Python {
    if ($Python -ne '') { return $Python }
    if (Get-Command py -ErrorAction SilentlyContinue) {
        $exe = Get-NativeOutput 'py' @('-3', '-c', 'import sys; print(sys.executable)')
        if ($exe -ne '') { return $exe }
    }
    $cmd = Get-Command python -ErrorAction SilentlyContinue
    if ($null -ne $cmd) { return $cmd.Source }
    return ''
}

$BasePython = Find-Python
# the Microsoft Store alias python.exe answers nothing useful: the version check below catches it
$PyVersion = if ($BasePython -ne '') { Get-NativeOutput $BasePython @('-c', 'import sys; print("%d.%d" % sys.version_info[:2])') } else { '' }
if ($PyVersion -eq '') {
    throw 'no working Python found: install Python 3.12 from https://www.python.org (tick "Add python.exe to PATH") or run: winget install Python.Python.3.12'
}
if (-not (Test-Native $BasePython @('-c', 'import sys; sys.exit(sys.version_info < (3, 10))'))) {
    throw "AvatarCam needs Python 3.10 or newer; $BasePython is $PyVersion (pass -Python PATH)"
}

$Flavour = 'cpu'
if ($Gpu) { $Flavour = 'gpu' }
elseif (-not $Cpu -and (Get-Command nvidia-smi -ErrorAction SilentlyContinue) -and (Test-Native 'nvidia-smi' @('-L'))) { $Flavour = 'gpu' }
$ExtraList = @('app')
if (-not $NoUi) { $ExtraList += 'ui' }
if ($Extras -ne '') { $ExtraList += @($Extras -split ',' | Where-Object { $_ -ne '' }) }
$ExtrasText = $ExtraList -join ','

Write-Host "AvatarCam installer: $From"
Write-Host "  environment: $Prefix (Python $PyVersion from $BasePython)"
Write-Host "  PyTorch: $Flavour build; extras: $ExtrasText$(if ($Flavour -eq 'gpu') { ' (+ gpu: torch-tensorrt)' })"

# ------------------------------------------------------------------------------------------------ environment
Write-Step "Virtual environment $Prefix"
$cfg = Join-Path $Prefix 'pyvenv.cfg'
if ($Reinstall -and (Test-Path -LiteralPath $cfg)) { Remove-Thing $Prefix 'old environment (-Reinstall)' }
if ((Test-Path -LiteralPath $cfg) -and (Test-Native $VenvPy @('-c', 'import sys'))) {
    Write-Already 'environment exists'
} else {
    if ((Test-Path -LiteralPath $Prefix) -and -not (Test-Path -LiteralPath $cfg)) {
        throw "$Prefix exists and is not a virtual environment: pick another -Prefix"
    }
    $venvArgs = @('-m', 'venv')
    if ($UseCurrentPythonPackages) { $venvArgs += '--system-site-packages' }
    Invoke-Native $BasePython ($venvArgs + @($Prefix)) 'create the virtual environment'
    Write-Ok "created $Prefix"
}

function Invoke-Pip([string[]]$Arguments, [string]$What) {
    Write-Ok "running: pip $($Arguments -join ' ')"
    Invoke-Native $VenvPy (@('-m', 'pip', '--disable-pip-version-check') + $Arguments) $What
}

# ------------------------------------------------------------------------------------------------ torch
Write-Step "PyTorch ($Flavour build)"
$torchState = if (Test-Path -LiteralPath $VenvPy) { Get-NativeOutput $VenvPy @('-c', 'import torch; print(torch.__version__, torch.version.cuda or "none")') } else { '' }
$torchOk = $false
if ($torchState -ne '') {
    $torchVer, $torchCuda = $torchState -split ' ', 2
    if ($UseCurrentPythonPackages) { $torchOk = $true }
    elseif (($torchVer -split '\+')[0] -eq $TorchVersion -and ($Flavour -eq 'cpu' -or $torchCuda -ne 'none')) { $torchOk = $true }
}
if ($torchOk) {
    Write-Already "torch $torchState"
} elseif ($Flavour -eq 'gpu') {
    Write-Ok "downloading the CUDA build of torch $TorchVersion (about 3 GB) from $CudaIndex"
    Invoke-Pip @('install', "torch==$TorchVersion", '--index-url', $CudaIndex) 'install the CUDA build of PyTorch'
} else {
    Write-Ok "downloading the CPU build of torch $TorchVersion (about 200 MB)"
    Invoke-Pip @('install', "torch==$TorchVersion") 'install PyTorch'
}

# ------------------------------------------------------------------------------------------------ avatarcam
function Get-SourceDigest {
    $sha = [System.Security.Cryptography.SHA256]::Create()
    if (-not $FromIsDir) { return (Get-FileHash -LiteralPath $From -Algorithm SHA256).Hash }
    $lines = foreach ($part in $PackageParts) {
        $path = Join-Path $From $part
        if (-not (Test-Path -LiteralPath $path)) { continue }
        Get-ChildItem -LiteralPath $path -File -Recurse -Force |
            Where-Object { $_.FullName -notmatch '\\__pycache__\\' -and $_.Extension -ne '.pyc' } |
            ForEach-Object { '{0} {1}' -f $_.FullName.Substring($From.Length), (Get-FileHash -LiteralPath $_.FullName -Algorithm SHA256).Hash }
    }
    $bytes = [System.Text.Encoding]::UTF8.GetBytes((($lines | Sort-Object) -join "`n"))
    return ([BitConverter]::ToString($sha.ComputeHash($bytes)) -replace '-', '')
}

Write-Step "AvatarCam [$ExtrasText]"
$stampText = "source=$(Get-SourceDigest) extras=$ExtrasText flavour=$Flavour"
if (-not $Reinstall -and (Test-Path -LiteralPath $Stamp) -and ((Get-Content -LiteralPath $Stamp -Raw).Trim() -eq $stampText) -and (Test-Path -LiteralPath $VenvExe)) {
    Write-Already 'avatarcam is current'
} elseif ($PSCmdlet.ShouldProcess($Prefix, "install $From[$ExtrasText]")) {
    $work = Join-Path ([IO.Path]::GetTempPath()) ("avatarcam-install-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $work | Out-Null
    try {
        # keep the installed torch: pip must not swap it while resolving the extras
        $pin = Get-NativeOutput $VenvPy @('-c', 'import torch; print("torch==" + torch.__version__)')
        Set-Content -LiteralPath (Join-Path $work 'constraints.txt') -Value $pin -Encoding ascii
        $target = $From
        if ($FromIsDir) {   # build from a clean copy: an in-tree build leaves build\ in the checkout
            $target = Join-Path $work 'src'
            New-Item -ItemType Directory -Path $target | Out-Null
            foreach ($part in $PackageParts) {
                $path = Join-Path $From $part
                if (Test-Path -LiteralPath $path) { Copy-Item -LiteralPath $path -Destination $target -Recurse }
            }
            Get-ChildItem -LiteralPath $target -Directory -Recurse -Filter '__pycache__' | Remove-Item -Recurse -Force
        }
        $pipArgs = @('install', '--upgrade', '-c', (Join-Path $work 'constraints.txt'))
        if ($UseCurrentPythonPackages) { $pipArgs += '--no-build-isolation' }
        Invoke-Pip ($pipArgs + @("$target[$ExtrasText]")) 'install AvatarCam'
        if ($Flavour -eq 'gpu') {
            try {
                Invoke-Pip ($pipArgs + @("$target[$ExtrasText,gpu]")) 'install torch-tensorrt (the gpu extra)'
            } catch {
                Write-Warning "torch-tensorrt did not install ($($_.Exception.Message)); AvatarCam runs on the GPU without it (engine.backend eager or compile)"
            }
        }
        Set-Content -LiteralPath $Stamp -Value $stampText -Encoding ascii
        Write-Ok "installed avatarcam $(Get-NativeOutput $VenvPy @('-c', 'import avatarcam; print(avatarcam.__version__)'))"
    } finally {
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }
}

# ------------------------------------------------------------------------------------------------ command, shortcuts
Write-Step 'Command `avatarcam`'
$shimText = "@`"$VenvExe`" %*"
if ((Test-Path -LiteralPath $Shim) -and ((Get-Content -LiteralPath $Shim -Raw).Trim() -eq $shimText)) {
    Write-Already $Shim
} elseif ($PSCmdlet.ShouldProcess($Shim, 'write the avatarcam command')) {
    New-Item -ItemType Directory -Path $BinDir -Force | Out-Null
    Set-Content -LiteralPath $Shim -Value $shimText -Encoding ascii
    Write-Ok "wrote $Shim"
}
if ((Get-UserPath) -contains $BinDir) {
    Write-Already "$BinDir is on your PATH"
} elseif (Confirm-Step "Add $BinDir to your PATH so that ``avatarcam`` works in new terminals?") {
    if ($PSCmdlet.ShouldProcess('user PATH', "add $BinDir")) { Set-UserPath (@(Get-UserPath) + $BinDir) }
    Write-Ok "added $BinDir to your PATH (open a new terminal to use it)"
} else {
    Write-Note "run AvatarCam as $VenvExe"
}

Write-Step 'Start-menu shortcut'
if ($NoUi) { Write-Ok 'skipped (-NoUi: the tray app is not installed)' }
else { Set-Shortcut $MenuLink 'Start-menu shortcut "AvatarCam"' }

Write-Step 'Autostart'
if ($Autostart -and -not $NoUi) { Set-Shortcut $StartupLink 'start at login' }
elseif (Test-Path -LiteralPath $StartupLink) { Write-Already 'starts at login (remove with -Uninstall)' }
else { Write-Ok 'off (-Autostart starts the tray app at login)' }

# ------------------------------------------------------------------------------------------------ OBS
Write-Step 'OBS Studio and its Virtual Camera (the camera Zoom, Teams and Meet see)'
$obsExe = $null
foreach ($key in @('HKLM:\SOFTWARE\OBS Studio', 'HKLM:\SOFTWARE\WOW6432Node\OBS Studio', 'HKCU:\SOFTWARE\OBS Studio')) {
    $item = Get-ItemProperty -LiteralPath $key -ErrorAction SilentlyContinue
    if ($null -ne $item -and $item.PSObject.Properties['(default)']) {
        $candidate = Join-Path $item.'(default)' 'bin\64bit\obs64.exe'
        if (Test-Path -LiteralPath $candidate) { $obsExe = $candidate; break }
    }
}
if ($null -eq $obsExe) {
    foreach ($dir in @($env:ProgramFiles, ${env:ProgramFiles(x86)}, (Join-Path $env:USERPROFILE 'scoop\apps\obs-studio\current'))) {
        if (-not $dir) { continue }
        $candidate = Join-Path $dir 'obs-studio\bin\64bit\obs64.exe'
        if ($dir -like '*scoop*') { $candidate = Join-Path $dir 'bin\64bit\obs64.exe' }
        if (Test-Path -LiteralPath $candidate) { $obsExe = $candidate; break }
    }
}
if ($null -eq $obsExe) {
    Write-Warning 'OBS Studio is not installed: AvatarCam shows up as a webcam through the OBS Virtual Camera. Install OBS 28 or newer: https://obsproject.com or winget install OBSProject.OBSStudio'
} else {
    Write-Ok "OBS Studio $((Get-Item -LiteralPath $obsExe).VersionInfo.ProductVersion) at $obsExe"
}
$camKey = "HKLM:\SOFTWARE\Classes\CLSID\$ObsCameraClsid\InprocServer32"
$camDll = (Get-ItemProperty -LiteralPath $camKey -ErrorAction SilentlyContinue)
$camPath = if ($null -ne $camDll -and $camDll.PSObject.Properties['(default)']) { $camDll.'(default)' } else { '' }
if ($camPath -ne '' -and (Test-Path -LiteralPath $camPath)) {
    Write-Already "OBS Virtual Camera registered ($camPath)"
} elseif ($null -ne $obsExe) {
    $bat = Join-Path (Split-Path -Parent (Split-Path -Parent (Split-Path -Parent $obsExe))) 'data\obs-plugins\win-dshow\virtualcam-install.bat'
    Write-Note 'the OBS Virtual Camera is not registered yet. Start OBS once and click "Start Virtual Camera", then "Stop Virtual Camera" and close OBS.'
    Write-Note "If it still does not appear, run as administrator: $bat (or reinstall OBS)."
}
Write-Note 'one program at a time: while AvatarCam sends to the OBS Virtual Camera, OBS''s own "Start Virtual Camera" must be off (and the other way round)'
if (Get-Process -Name obs64 -ErrorAction SilentlyContinue) {
    Write-Note 'OBS is running now: if its virtual camera is on, AvatarCam cannot open the camera until you stop it there'
}
Write-Note 'to control OBS (scenes, mic sync): OBS > Tools > WebSocket Server Settings > Enable; port 4455 (obs-websocket v5; 4444 was the old v4 plugin)'

# ------------------------------------------------------------------------------------------------ doctor
Write-Step 'avatarcam doctor'
if ($PSCmdlet.ShouldProcess($VenvExe, 'run avatarcam doctor')) {
    & $VenvExe doctor
    if ($LASTEXITCODE -ne 0) { Write-Warning "avatarcam doctor exited with status $LASTEXITCODE" }
}

Write-Host ''
if ($WhatIfPreference) {
    Write-Host 'Dry run (-WhatIf) finished: nothing was changed.'
} else {
    Write-Host 'AvatarCam is installed. In a new terminal: avatarcam run  (microphone -> virtual camera)'
    if (-not $NoUi) { Write-Host 'or open "AvatarCam" from the Start menu (the tray app).' }
}
