#!/usr/bin/env python3
"""Records a QMP session with the real qemu-system-x86_64 as test data for QmpMessageTests.

Every line sent is written as "> LINE", every line received as "< LINE", bytes unchanged.
Run: python3 capture.py > qemu-7.2-session.txt   (needs qemu-system-x86 and /dev/shm)
"""
import os, socket, subprocess, sys, tempfile, time

work = tempfile.mkdtemp(prefix='sfqmp-capture-')
sock_path = os.path.join(work, 'qmp.sock')
mem = f'/dev/shm/sfqmp-capture-{os.getpid()}.mem'
state = os.path.join(work, 'state')
out = sys.stdout


def start(share, incoming):
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    return subprocess.Popen([
        'qemu-system-x86_64', '-M', 'microvm,memory-backend=mem', '-accel', 'tcg', '-S', '-m', '64M',
        '-object', f'memory-backend-file,id=mem,size=64M,mem-path={mem},share={share}',
        '-display', 'none', '-nodefaults', '-no-user-config',
        '-qmp', f'unix:{sock_path},server=on,wait=off'] + (['-incoming', 'defer'] if incoming else []),
        stdin=subprocess.DEVNULL)


def session(qemu, commands):
    for _ in range(1000):
        if os.path.exists(sock_path):
            break
        time.sleep(0.01)
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    f = s.makefile('rwb', buffering=0)

    def recv():
        line = f.readline()
        if line:
            out.write('< ' + line.decode().rstrip('\r\n') + '\n')
        return line

    def send(line, replies=1):
        out.write('> ' + line + '\n')
        f.write((line + '\n').encode())
        got = []
        while len([g for g in got if b'"return"' in g or b'"error"' in g]) < replies:
            got.append(recv())
        return got

    recv()  # greeting
    commands(send)
    # Events after quit, then EOF.
    while recv():
        pass
    qemu.wait(timeout=30)


def template(send):
    send('{"execute": "qmp_capabilities"}')
    send('{"execute": "query-status", "id": 1}')
    send('{"execute": "cont", "id": 2}')
    send('{"execute": "stop", "id": 3}')
    send('{"execute": "query-status", "id": 4}')
    send('{"execute": "no-such-command", "id": 5}')
    send('{"execute": "migrate", "id": 6}')
    send('{"execute": "query-migrate", "id": 7}')
    send('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": ['
         '{"capability": "x-ignore-shared", "state": true}, {"capability": "events", "state": true}]}, "id": 8}')
    send('{"execute": "migrate", "arguments": {"uri": "exec:cat > %s"}, "id": 9}' % state)
    for i in range(200):
        got = send('{"execute": "query-migrate", "id": %d}' % (10 + i))
        if any(b'"completed"' in g or b'"failed"' in g for g in got):
            break
        time.sleep(0.005)
    send('{"execute": "quit", "id": "last"}')


def clone(send):
    send('{"execute": "qmp_capabilities"}')
    send('{"execute": "query-status", "id": "c1"}')
    send('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": ['
         '{"capability": "x-ignore-shared", "state": true}, {"capability": "events", "state": true}]}, "id": "c2"}')
    send('{"execute": "migrate-incoming", "arguments": {"uri": "exec:cat %s"}, "id": "c3"}' % state)
    for i in range(200):
        got = send('{"execute": "query-migrate", "id": "c%d"}' % (4 + i))
        if any(b'"completed"' in g or b'"failed"' in g for g in got):
            break
        time.sleep(0.005)
    send('{"execute": "query-status", "id": "s"}')
    send('{"execute": "cont", "id": "go"}')
    send('{"execute": "quit"}')


try:
    out.write('# template: stop, snapshot with x-ignore-shared to exec:cat, quit\n')
    session(start('on', False), template)
    out.write('# clone: -incoming defer, migrate-incoming from the snapshot, cont, quit\n')
    session(start('off', True), clone)
finally:
    for p in (mem, state, sock_path):
        if os.path.exists(p):
            os.unlink(p)
    os.rmdir(work)
