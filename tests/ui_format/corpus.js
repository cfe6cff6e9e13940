// Builds one UI-format workflow in the real editor, from a seed, and answers what the
// editor saves (app.graph.serialize()). Each file mixes the constructs the converter
// handles: widgets, links, reroute chains, primitives, muted and bypassed nodes, notes,
// subgraphs, and the tiny SD1.5 pipeline.
async ({ seed, checkpoint }) => {
  let state = seed * 2654435761 % 4294967296 || 1;
  const random = () => { state = (state * 1664525 + 1013904223) % 4294967296; return state / 4294967296; };
  const pick = (items) => items[Math.floor(random() * items.length)];
  const graph = window.app.graph;
  graph.clear();
  const add = (type, values = {}) => {
    const node = window.LiteGraph.createNode(type);
    graph.add(node);
    node.pos = [Math.floor(random() * 1500), Math.floor(random() * 900)];
    for (const [name, value] of Object.entries(values)) {
      const widget = node.widgets.find((w) => w.name === name);
      widget.value = value;
    }
    return node;
  };
  const link = (from, slot, to, input) => from.connect(slot, to, typeof input === 'string' ? to.findInputSlot(input) : input);
  const rerouted = (from, slot, count) => {
    let node = from, out = slot;
    for (let i = 0; i < count; i++) { const r = add('Reroute'); link(node, out, r, 0); node = r; out = 0; }
    return [node, out];
  };
  const made = [];
  // An image chain with random operations.
  const size = pick([32, 48, 64]);
  let [tail, slot] = [add('EmptyImage', { width: size, height: size, batch_size: 1, color: Math.floor(random() * 16777215) }), 0];
  const ops = ['ImageInvert', 'ImageBlur', 'ImageScaleBy', 'ImageFlip', 'ImageSharpen'];
  for (let i = 0, n = 1 + Math.floor(random() * 4); i < n; i++) {
    const op = add(pick(ops));
    made.push(op);
    if (random() < 0.3) [tail, slot] = rerouted(tail, slot, 1 + Math.floor(random() * 3));
    link(tail, slot, op, 0);
    [tail, slot] = [op, 0];
  }
  const save = add(pick(['SaveImage', 'PreviewImage']));
  link(tail, slot, save, 0);
  if (random() < 0.3) made[0].mode = 2;
  else if (random() < 0.4) made[made.length - 1].mode = 4;
  if (random() < 0.3) add(pick(['Note', 'MarkdownNote'])).widgets[0].value = 'note ' + seed;
  // The tiny SD1.5 pipeline, with a primitive feeding seeds, in about half the files.
  if (random() < 0.5) {
    const ckpt = add('CheckpointLoaderSimple', { ckpt_name: checkpoint });
    const positive = add('CLIPTextEncode', { text: 'a cat ' + seed });
    const negative = add('CLIPTextEncode', { text: '' });
    const latent = add('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
    const sampler = add('KSampler', { seed: seed, steps: 2, cfg: 7, sampler_name: pick(['euler', 'ddim']), scheduler: 'normal', denoise: 1 });
    const [clip, clipSlot] = random() < 0.4 ? rerouted(ckpt, 1, 2) : [ckpt, 1];
    link(clip, clipSlot, positive, 'clip'); link(clip, clipSlot, negative, 'clip');
    link(ckpt, 0, sampler, 'model'); link(positive, 0, sampler, 'positive');
    link(negative, 0, sampler, 'negative'); link(latent, 0, sampler, 'latent_image');
    const decode = add('VAEDecode');
    link(sampler, 0, decode, 'samples'); link(ckpt, 2, decode, 'vae');
    const out = add('SaveImage', { filename_prefix: 'ui' + seed });
    link(decode, 0, out, 'images');
    if (random() < 0.6) {
      const second = add('KSampler', { seed: 1, steps: 1, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 0.5 });
      link(ckpt, 0, second, 'model'); link(positive, 0, second, 'positive');
      link(negative, 0, second, 'negative'); link(sampler, 0, second, 'latent_image');
      const primitive = add('PrimitiveNode');
      link(primitive, 0, sampler, 'seed'); link(primitive, 0, second, 'seed');
      primitive.widgets[0].value = seed * 7;
      const preview = add('PreviewImage'); const decode2 = add('VAEDecode');
      link(second, 0, decode2, 'samples'); link(ckpt, 2, decode2, 'vae'); link(decode2, 0, preview, 'images');
      if (random() < 0.3) decode2.mode = 2;
    }
    if (random() < 0.5) {
      const { node } = graph.convertToSubgraph(new Set([positive, negative]));
      node.title = 'Prompts ' + seed;
      if (random() < 0.2) node.mode = pick([2, 4]);
    } else if (random() < 0.5) {
      // The sampler in a subgraph, its seed a promoted widget or fed by the primitive.
      const { node } = graph.convertToSubgraph(new Set([sampler, decode]));
      if (random() < 0.3) node.mode = 4;
    }
  }
  // Converted widgets fed by a node, an upload widget, and a bypass that finds no match.
  if (random() < 0.4) {
    const width = add('PrimitiveInt', { value: 16 + Math.floor(random() * 48) });
    const blank = add('EmptyImage', { width: 8, height: 8, batch_size: 1, color: 0 });
    link(width, 0, blank, 'width');
    const loaded = add('LoadImage');
    loaded.widgets[0].value = 'example.png';
    const scaled = add('ImageScale', { upscale_method: 'bilinear', width: 32, height: 32, crop: 'center' });
    link(loaded, 0, scaled, 'image');
    const composite = add('ImageCompositeMasked', { x: 1, y: 2, resize_source: false });
    link(blank, 0, composite, 'destination'); link(scaled, 0, composite, 'source');
    link(loaded, 1, composite, 'mask');
    if (random() < 0.5) scaled.mode = 4;
    if (random() < 0.3) loaded.mode = 4;
    link(composite, 0, add('PreviewImage'), 'images');
  }
  if (random() < 0.4 && made.length > 1 && made[0].mode === 0) {
    graph.convertToSubgraph(new Set(made.slice(0, 2).filter((n) => n.graph === graph)));
  }
  return graph.serialize();
}
