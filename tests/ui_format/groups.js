// Builds, in the real editor, a graph and selects some of its nodes; build_corpus.py then
// runs the editor's own "Convert to Group Node" command on them (legacy group nodes).
async ({ seed, checkpoint }) => {
  let state = seed * 2654435761 % 4294967296 || 1;
  const random = () => { state = (state * 1664525 + 1013904223) % 4294967296; return state / 4294967296; };
  const pick = (items) => items[Math.floor(random() * items.length)];
  const graph = window.app.graph;
  graph.clear();
  const add = (type, values = {}) => {
    const node = window.LiteGraph.createNode(type);
    graph.add(node);
    for (const [name, value] of Object.entries(values)) node.widgets.find((w) => w.name === name).value = value;
    return node;
  };
  const image = add('EmptyImage', { width: 16 + seed, height: 24, batch_size: 1, color: seed * 999 });
  const chain = [image];
  for (let i = 0, n = 2 + Math.floor(random() * 3); i < n; i++) {
    const op = add(pick(['ImageBlur', 'ImageInvert', 'ImageSharpen', 'ImageBlur']));
    chain.at(-1).connect(0, op, 0);
    chain.push(op);
  }
  const save = add(pick(['SaveImage', 'PreviewImage']));
  chain.at(-1).connect(0, save, 0);
  const selected = chain.slice(random() < 0.5 ? 0 : 1, chain.length - (random() < 0.4 ? 1 : 0));
  if (random() < 0.5) {
    const ckpt = add('CheckpointLoaderSimple', { ckpt_name: checkpoint });
    const text = add('CLIPTextEncode', { text: 'group ' + seed });
    ckpt.connect(1, text, 0);
    const sampler = add('KSampler', { seed: seed * 3, steps: 2 });
    ckpt.connect(0, sampler, 0); text.connect(0, sampler, 1); text.connect(0, sampler, 2);
    const latent = add('EmptyLatentImage', { width: 64, height: 64 });
    latent.connect(0, sampler, 3);
    const decode = add('VAEDecode'); sampler.connect(0, decode, 0); ckpt.connect(2, decode, 1);
    decode.connect(0, add('PreviewImage'), 0);
    selected.push(...(random() < 0.5 ? [text, sampler] : [sampler, latent, decode]));
    if (random() < 0.4) {
      const width = add('PrimitiveInt', { value: 32 });
      width.connect(0, latent, latent.findInputSlot('width'));
    }
  }
  if (random() < 0.3) {
    const reroute = add('Reroute'); image.connect(0, reroute, 0);
    const extra = add('ImageInvert'); reroute.connect(0, extra, 0);
    extra.connect(0, add('PreviewImage'), 0);
    if (random() < 0.5) selected.push(extra);
  }
  if (new Set(selected).size < 2) selected.push(...chain.slice(0, 2));  // a group needs two
  window.app.canvas.deselectAll();
  for (const node of new Set(selected)) window.app.canvas.select(node);
  return selected.length;
}
