"""medcl's encoder under MONAI's parameter names: the same features, for every block type."""

import pytest
import torch
from monai.networks import nets

from medcl.models import UNetEncoder
from medcl.stages.export import monai_settings, monai_state_dict


@pytest.mark.parametrize("res_units", [0, 2])
@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_autoencoder_encode_equals_the_encoder(res_units, norm):
    torch.manual_seed(0)
    enc = UNetEncoder(3, (4, 8, 16, 32), num_res_units=res_units, norm=norm).eval()
    net = nets.AutoEncoder(**monai_settings(enc, "autoencoder")).eval()
    result = net.load_state_dict(monai_state_dict(enc, "autoencoder"), strict=False)
    assert not result.unexpected_keys
    assert not [k for k in result.missing_keys if k.startswith("encode.")]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.encode(x), enc.forward_features(x)[-1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("res_units", [0, 2])
def test_unet_levels_above_the_bottom_equal_the_encoder(res_units):
    torch.manual_seed(0)
    enc = UNetEncoder(1, (4, 8, 16, 32), num_res_units=res_units).eval()
    net = nets.UNet(**monai_settings(enc, "unet"), out_channels=2).eval()
    result = net.load_state_dict(monai_state_dict(enc, "unet"), strict=False)
    assert not result.unexpected_keys
    fresh = nets.UNet(**monai_settings(enc, "unet"), out_channels=2)
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])]
    assert changed  # something was loaded (a fresh MONAI init differs from ours)
    outs = []
    down = [net.model[0], net.model[1].submodule[0], net.model[1].submodule[1].submodule[0]]
    for m in down:
        m.register_forward_hook(lambda _m, _i, o: outs.append(o))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        net(x)
        mine = enc.forward_features(x)
    for level in range(3):
        torch.testing.assert_close(outs[level], mine[level], rtol=0, atol=1e-6)
