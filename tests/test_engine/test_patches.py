"""The one list of BasicSR patches (``cspsr_arch.engine.patches``) and the one checkpoint reader
(``cspsr_arch.engine.checkpoint.read_state_dict``)."""
import pytest
import torch

from cspsr_arch.engine.checkpoint import bare_key, read_state_dict
from cspsr_arch.engine.options import plain
from cspsr_arch.engine.patches import PATCHES, _owner, patched_basicsr
from cspsr_arch.errors import CSPSRInputError


def test_every_patch_replaces_an_existing_attribute_and_is_undone():
    originals = [getattr(_owner(p.module), p.name) for p in PATCHES]
    assert len({(p.module, p.name) for p in PATCHES}) == len(PATCHES) == 8
    assert all(len(p.why) > 40 for p in PATCHES)  # each says what BasicSR does and what goes wrong
    with patched_basicsr('gloo'):
        replaced = [getattr(_owner(p.module), p.name) for p in PATCHES]
    assert all(new is not old for new, old in zip(replaced, originals))
    assert [getattr(_owner(p.module), p.name) for p in PATCHES] == originals


def test_reader_prefers_ema_and_drops_wrapper_prefixes(tmp_path):
    weight = torch.ones(2)
    torch.save({'params': {'module.a': weight}, 'params_ema': {'module._orig_mod.a': 2 * weight}}, tmp_path / 'n.pth')
    state, key = read_state_dict(str(tmp_path / 'n.pth'))
    assert key == 'params_ema' and list(state) == ['a'] and state['a'][0] == 2
    assert read_state_dict(str(tmp_path / 'n.pth'), 'params')[0]['a'][0] == 1
    torch.save({'params': {'a': weight}}, tmp_path / 'plain.pth')
    assert read_state_dict(str(tmp_path / 'plain.pth'), 'params_ema', ema_falls_back=True)[1] == 'params'
    with pytest.raises(CSPSRInputError, match=r"has no 'params_ema' entry; it has params\. Use params\."):
        read_state_dict(str(tmp_path / 'plain.pth'), 'params_ema', hint='Use params.')
    torch.save({'a': weight}, tmp_path / 'bare.pth')
    state, key = read_state_dict(str(tmp_path / 'bare.pth'))
    assert key == '' and list(state) == ['a']
    assert bare_key('module.cvm_net.x') == 'cvm_net.x'


@pytest.mark.parametrize('content, match', [(None, 'Weights not found: .*Train first'),
                                            (b'truncated', 'not a readable PyTorch checkpoint'),
                                            ([1, 2], 'holds a list, not a state dict'),
                                            ({'params': {'a': 'text'}}, 'not a network checkpoint')])
def test_reader_errors_are_one_sentence(tmp_path, content, match):
    path = tmp_path / 'x.pth'
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CSPSRInputError, match=match):
        read_state_dict(str(path), what='Weights', hint='Train first.')


def test_plain_turns_ordered_mappings_and_tuples_into_dicts_and_lists():
    from collections import OrderedDict
    assert plain(OrderedDict(a=(1, OrderedDict(b=[2])))) == {'a': [1, {'b': [2]}]}
    assert type(plain(OrderedDict(a=1))) is dict
