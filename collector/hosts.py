"""Where a job's agent is: the ``host`` key's forms, the node read through a parent, and
whether the agent runs on this machine. Pure string work (no lookups but this machine's name)."""
import re

from .protocol import quotable

_HOST_PORT = re.compile(r'^(?:\[[0-9A-Fa-f:.%\w]+\]|[^\[\]:/]+)(?::(?P<port>[^/]*))?$')


def host_parts(host):
    """``(agent, path)`` of a ``host`` value: 'parent:19999/host/child' is ('parent:19999', 'host/child')."""
    where, _, path = host.strip().rstrip('/').partition('/')
    return where, path


def valid_host(host):
    """An agent as ``host:port`` (``[::1]:19999`` for IPv6) or ``parent:port/host/child``:
    no scheme (that is ``protocol``'s), no other path, a port from 1 to 65535."""
    if not isinstance(host, str) or not host.strip() or '://' in host or any(c in host.strip() for c in ' ?#'):
        return False
    where, path = host_parts(host)
    m = _HOST_PORT.match(where)
    if not m or (path and not re.match(r'^host/[^/]+$', path)):
        return False
    port = m.group('port')
    return port is None or (port.isdigit() and 0 < int(port) < 65536)


def port_given(host):
    """Whether ``host`` names its port: without one, the agent is read on the protocol's own
    (80 for http, 443 for https), not on the 19999 an agent listens on by default."""
    if not isinstance(host, str):
        return False
    m = _HOST_PORT.match(host_parts(host)[0])
    return bool(m and m.group('port'))


def node_read(host):
    """The node a job reads through a parent ('parent:19999/host/child': 'child'), else None."""
    if not isinstance(host, str):
        return None
    path = host_parts(host)[1]
    node = path[len('host/'):] if path.startswith('host/') else ''
    return node or None


def on_this_machine(host, hostname=None):
    """Whether the agent a job reads (``host``) runs where the job does: a loopback address,
    'localhost' or this machine's name (``hostname``, default its own), not a child read
    through it. What runs here (a training) shows in such an agent's charts only."""
    import ipaddress
    import socket
    if not isinstance(host, str) or node_read(host):
        return False
    netloc = host_parts(host)[0]
    name = netloc[1:netloc.find(']')] if netloc.startswith('[') else netloc.rsplit(':', 1)[0]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        here = hostname if hostname is not None else socket.gethostname()
        return name.lower().rstrip('.') in ('localhost', 'localhost.localdomain', here.lower())


# a job reading a node through a parent charts on the agent it runs on (the parent): its charts'
# titles end in ' (node <child>)', so the dashboard and `top --host parent/host/child` can tell;
# /api/v1/charts lists a title with ' (<chart id>)' after it
NODE_TITLE = ' (node {})'
NODE_IN_TITLE = re.compile(r' \(node ([^()]+)\)(?: \([^()]*\))?$')


def node_title(title, host):
    """``title`` as the charts of a job reading ``host`` bear it (a title is quoted on the
    protocol line, which has no escape for a quote)."""
    node = node_read(host)
    return title + NODE_TITLE.format(quotable(node)) if node else title


def titled_node(title):
    """The node a chart's title (``node_title``) names, or None."""
    m = NODE_IN_TITLE.search(title) if isinstance(title, str) else None
    return m.group(1) if m else None
